// @ts-check
// Jobs (panel and webhook), newest first, with "Older" paging. A row opens its job (click anywhere on
// it, or its title with the keyboard); the open job is marked. An open job that runs is followed: its
// pace, time left and any wait, Cancel while it is queued or running, "Invite the N not sent" once it
// is over (or a link to the job that retried it), the invitation follow-up (who has joined since),
// and a flag when it finishes while another tab is open. A cancelled job reads "Cancelled", not
// "Stopped": the people not sent are their own count.
import { call } from "./api.js";
import { copyText, download } from "./csv.js";
import { announce, button, clear, count, emptyState, formatDate, h, message, plural, spinner } from "./dom.js";
import { flag } from "./flags.js";
import { pagedTable } from "./table.js";
import {
  cancelledJob, countCards, countsText, etaText, finished, itemsCsv, itemsTable, jobTitle, notSent, pacer, pollJob, progressBar,
  stateLozenge,
} from "./job-view.js";
import { cursorPages } from "./pages.js";
import { person } from "./people.js";

/** @typedef {import("./job-view.js").Job} Job */

const JOBS_PAGE = 50;

// What the invitation follow-up found (README "Follow-ups"), or what it will do: "" for previews and
// jobs that invited nobody.
/** @param {Job} job */
export function followUpText(job) {
  const invited = (job.counts || {}).invited || 0;
  if (job.dryRun || !invited) {
    return "";
  }
  if (job.followUp && typeof job.followUp.joined === "number") {
    return `${count(job.followUp.joined)} of ${count(invited)} joined (checked ${formatDate(job.followUp.checkedAt)})`;
  }
  return finished(job) ? "who has joined is checked later" : "";
}

/**
 * @param {HTMLElement} panel
 * @param {import("./app.js").Go} [go]
 * @returns {import("./app.js").View}
 */
export function mountJobs(panel, go = {}) {
  const list = h("div", { class: "results", "aria-busy": "false" });
  const detail = h("section", { class: "job-detail", "aria-live": "off", tabindex: "-1", "aria-label": "Job details", "aria-busy": "false" });
  /** @type {Job[]} */
  let jobs = [];
  /** @type {string | null} */
  let next = null;
  /** @type {import("./table.js").PagedTable<Job> | null} */
  let table = null;
  let opened = 0;
  /** @type {string | null} */
  let openId = null;
  const older = button("Older", () => load(false), { "aria-label": "Older jobs" });
  const refresh = button("Refresh", () => load(true));
  clear(panel,
    h("div", { class: "block-head" }, h("h2", { text: "Jobs" }), h("div", { class: "actions" }, refresh)),
    h("p", { class: "field-hint", text: "Invitations and previews started here or by a webhook, newest first. Open one to follow it, cancel it or invite those it did not reach." }),
    list, detail);

  const pages = cursorPages({
    list, older, resolver: "listJobs", key: "jobs", pageSize: JOBS_PAGE, loading: "Loading jobs…", olderWords: "older jobs",
    listed: (n) => `${plural(n, "job")} listed.`,
    onReset: () => { table = null; },
    onPage: (rows, cursor) => { jobs = rows; next = cursor; render(); },
  });
  const load = pages.load;

  function markOpen() {
    for (const tr of list.querySelectorAll("tr[data-job-id]")) {
      if (!(tr instanceof HTMLElement)) {
        continue;
      }
      const on = tr.dataset.jobId === openId;
      tr.classList.toggle("row-open", on);
      const link = tr.querySelector(".job-link");
      if (link) {
        if (on) {
          link.setAttribute("aria-current", "true");
        } else {
          link.removeAttribute("aria-current");
        }
      }
    }
  }

  function render() {
    if (!table) {
      table = pagedTable({
        caption: "Jobs",
        rows: jobs,
        empty: emptyState("No jobs yet", "Invitations and previews started on the Invite tab or by a webhook are listed here.",
          go.showTab ? button("Invite people", () => go.showTab?.("invite"), { kind: "primary" }) : null),
        search: (j) => `${jobTitle(j)} ${countsText(j)} ${j.state}`,
        rowAttrs: (j) => ({
          class: `row-link${j.id === openId ? " row-open" : ""}`,
          "data-job-id": j.id,
          onclick: (/** @type {MouseEvent} */ event) => {
            if (!(event.target instanceof Element) || !event.target.closest("button")) {
              open(j.id);
            }
          },
        }),
        columns: [
          {
            label: "Job",
            cell: (j) => [
              h("button", { type: "button", class: "job-link", "data-job-id": j.id, "aria-label": `Open job: ${jobTitle(j)}`, onclick: () => open(j.id) },
                j.dryRun ? "Preview" : "Invitation"),
              h("span", { class: "cell-sub", text: j.source === "webhook" ? "By webhook" : "From the panel" }),
            ],
            sort: (j) => (j.dryRun ? "Preview" : "Invitation"),
          },
          { label: "State", cell: (j) => stateLozenge(j), sort: (j) => j.state },
          { label: "Outcome", cell: (j) => countsText(j) },
          { label: "People", className: "num", cell: (j) => (j.total || 0).toLocaleString("en"), sort: (j) => j.total || 0 },
          { label: "Created by", cell: (j) => (j.createdBy ? person(j.createdBy) : (j.source === "webhook" ? "Webhook" : "")) },
          { label: "Created", className: "nowrap", cell: (j) => formatDate(j.createdAt), sort: (j) => j.createdAt || "" },
        ],
      });
      clear(list, table, pages.note, h("div", { class: "actions" }, older));
    } else {
      table.update(jobs);
    }
    older.hidden = !next;
    markOpen();
  }

  // Closing the details puts focus back on the job's title in the list (or near it when it is gone).
  /** @param {string} jobId */
  function close(jobId) {
    opened += 1;
    openId = null;
    markOpen();
    detail.setAttribute("aria-busy", "false");
    clear(detail);
    const opener = [...list.querySelectorAll("button[data-job-id]")].find((b) => b.getAttribute("data-job-id") === jobId);
    const target = opener || list.querySelector(".table-scroll:not([hidden])") || refresh;
    if (target instanceof HTMLElement) {
      target.focus();
    }
    announce("Closed the job details.");
  }

  // The list's row for a job, kept in step with what the detail view learns.
  /** @param {Job} job */
  function refreshRow(job) {
    const at = jobs.findIndex((j) => j.id === job.id);
    if (at >= 0 && table) {
      const { items, ...light } = job;
      jobs = jobs.slice();
      jobs[at] = light;
      table.update(jobs);
      markOpen();
    }
  }

  /** @param {string} jobId */
  async function open(jobId) {
    const mine = ++opened;
    openId = jobId;
    markOpen();
    clear(detail, spinner("Loading the job…"));
    detail.setAttribute("aria-busy", "true");
    let job;
    try {
      ({ job } = await call("getJob", { jobId }));
    } catch (err) {
      if (mine === opened) {
        detail.setAttribute("aria-busy", "false");
        clear(detail, message("error", { title: "The job could not be opened", text: err.message }));
      }
      return;
    }
    if (mine !== opened) {
      return;
    }
    // Not busy while it is followed: the progress bar and counts tell how it goes.
    detail.setAttribute("aria-busy", "false");
    let latest = job;
    const pace = pacer();
    const bar = progressBar("Job progress");
    const cards = h("div", {}, countCards(job));
    const items = itemsTable(job, "Job items");
    const note = h("div");
    const hint = h("p", { class: "field-hint" });
    const eta = h("p", { class: "progress-hint" });
    const controls = h("div", { class: "actions" });
    const heading = h("h3", { text: jobTitle(job), tabindex: "-1" });
    /** @param {Job} j */
    const describe = (j) => clear(hint, stateLozenge(j), " · created by ", j.createdBy ? person(j.createdBy, { plain: true }) : "the webhook",
      ` · updated ${formatDate(j.updatedAt)}`, followUpText(j) ? ` · ${followUpText(j)}` : "");

    /** @param {Job} j */
    function showControls(j) {
      const left = notSent(j);
      const retriedAs = j.retriedAs;
      const again = j.dryRun ? `Preview the ${plural(left, "email")} not checked` : `Invite the ${plural(left, "person", "people")} not sent`;
      clear(controls,
        !finished(j) ? button("Cancel job", () => cancel(j), { id: "job-cancel" }) : null,
        finished(j) && left > 0 && !retriedAs ? button(again, () => retry(j), { id: "job-retry", kind: "primary" }) : null,
        finished(j) && retriedAs
          ? h("p", { class: "field-hint" }, "Those not sent were retried in another job. ",
              h("button", { type: "button", class: "link-btn", text: "Open the retry", onclick: () => open(retriedAs) }))
          : null);
    }

    /** @param {Job} j */
    async function cancel(j) {
      controls.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      try {
        const answer = await call("cancelJob", { jobId: j.id });
        if (mine === opened && answer.job) {
          show(answer.job);
        }
        flag("info", "Job cancelled", "It stops after the batch in flight; the people not yet invited are not sent an invitation.");
      } catch (err) {
        showControls(latest);
        clear(note, message("error", { title: "The job could not be cancelled", text: err.message }));
      }
    }

    /** @param {Job} j */
    async function retry(j) {
      controls.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      try {
        const { job: again } = await call("retryJob", { jobId: j.id });
        const n = again.total || 0;
        flag("success", "Retry started", again.dryRun
          ? `A new preview checks the ${plural(n, "email")} not checked before.`
          : `A new job invites the ${plural(n, "person", "people")} not sent before.`);
        await load(true);
        open(again.id);
      } catch (err) {
        showControls(latest);
        clear(note, message("error", { title: "Those not sent could not be retried", text: err.message }));
      }
    }

    /** @param {Job} j */
    function show(j) {
      latest = j;
      pace.add(j);
      bar.update(j);
      describe(j);
      eta.textContent = etaText(j, pace);
      clear(cards, countCards(j));
      items.update(j.items || []);
      showControls(j);
      refreshRow(j);
    }

    describe(job);
    clear(detail,
      h("div", { class: "block-head" },
        heading,
        h("div", { class: "actions" },
          button("Copy", () => copyText(itemsCsv(latest), "Copied the job's items"), { "aria-label": "Copy job items as CSV" }),
          button("Download CSV", () => download(`job-${job.id}.csv`, itemsCsv(latest)), { "aria-label": "Download CSV of job items" }),
          button("Close", () => close(jobId), { "aria-label": "Close job details" }))),
      hint, bar, eta, controls, cards, note, items);
    show(job);
    detail.focus();
    announce(`Opened ${jobTitle(job)}.`);
    if (finished(job)) {
      return;
    }
    try {
      const last = await pollJob(job.id, show, { isCancelled: () => mine !== opened });
      if (mine === opened && panel.hidden && finished(last)) {
        /** @type {["info" | "warning" | "success", string]} */
        const [tone, title] = cancelledJob(last) ? ["info", "A job was cancelled"]
          : last.state === "failed" ? ["warning", "A job stopped"] : ["success", "A job finished"];
        flag(tone, title, `${jobTitle(last)}: ${countsText(last)}.`,
          go.openJob ? [{ label: "View job", onClick: () => go.openJob?.(last.id) }] : []);
      }
    } catch (err) {
      if (mine === opened) {
        clear(note, message("error", { title: "Lost track of the job", text: `${err.message} The job keeps going on the server; open it again to see how it went.` }));
      }
    }
  }

  return {
    show: () => load(true),
    // Opens a job from elsewhere (the audit log, a flag): the list loads, then the job.
    open: (jobId) => open(jobId),
  };
}
