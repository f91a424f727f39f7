// Jobs (panel and webhook) and the audit log, newest first, with "Older" paging.
import { call } from "./api.js";
import { announce, button, clear, copyText, count, download, formatDate, h, message, pagedTable, plural, spinner, toCsv } from "./dom.js";
import { countCards, finished, itemsCsv, itemsTable, jobTitle, pollJob, progressBar, stateLozenge } from "./job.js";

const JOBS_PAGE = 50;
const AUDIT_PAGE = 100;

// A newest-first list loaded a page at a time: load(true) starts over, load(false) ("Older")
// follows the cursor `next`; onPage receives every row so far and the cursor. Each load has a
// sequence number and only the latest one's answer is used, so two at once (a double-clicked
// Refresh, Refresh while "Older" loads) never add the same rows twice. A failed "Older" keeps the
// rows: its error goes in `note` (to be placed under the table), with "Try again".
function cursorPages({ list, older, resolver, key, pageSize, loading, olderWords, listed, onReset, onPage }) {
  let rows = [];
  let next = null;
  let seq = 0;
  const note = h("div", { class: "page-note" });

  async function load(reset) {
    if (!reset && !next) {
      return;
    }
    const mine = ++seq;
    const payload = { limit: pageSize };
    if (reset) {
      rows = [];
      next = null;
      onReset();
      clear(note);
      clear(list, spinner(loading));
    } else {
      payload.before = next;
      clear(note, spinner(`Loading ${olderWords}…`));
    }
    older.disabled = true;
    list.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await call(resolver, payload);
    } catch (err) {
      if (mine !== seq) {
        return;
      }
      list.setAttribute("aria-busy", "false");
      older.disabled = false;
      if (reset) {
        clear(list, message("error", err.message));
      } else {
        const lost = !document.activeElement || document.activeElement === document.body
          || document.activeElement === older || list.contains(document.activeElement);
        const retry = button("Try again", () => {
          const region = list.querySelector(".table-scroll");
          if (region) {
            region.focus(); // this button goes away while the page loads
          }
          load(false);
        }, { "aria-label": `Try again to load ${olderWords}` });
        older.hidden = true;
        clear(note, message("error", `The ${olderWords} could not be loaded. ${err.message}`, retry));
        if (lost) {
          retry.focus();
        }
      }
      announce(err.message);
      return;
    }
    if (mine !== seq) {
      return;
    }
    list.setAttribute("aria-busy", "false");
    older.disabled = false;
    rows = rows.concat(answer[key] || []);
    next = answer.next || null;
    clear(note);
    onPage(rows, next);
    announce(listed(rows.length));
  }

  return { load, note };
}

export function mountJobs(panel) {
  const list = h("div", { class: "results", "aria-busy": "false" });
  const detail = h("section", { class: "job-detail", "aria-live": "off", tabindex: "-1", "aria-label": "Job details", "aria-busy": "false" });
  let jobs = [];
  let next = null;
  let table = null;
  let opened = 0;
  const older = button("Older", () => load(false), { "aria-label": "Older jobs" });
  const refresh = button("Refresh", () => load(true));
  clear(panel,
    h("div", { class: "block-head" }, h("h2", { text: "Jobs" }), h("div", { class: "actions" }, refresh)),
    h("p", { class: "field-hint", text: "Invitation jobs started here or by a webhook, newest first." }),
    list, detail);

  const pages = cursorPages({
    list, older, resolver: "listJobs", key: "jobs", pageSize: JOBS_PAGE, loading: "Loading jobs…", olderWords: "older jobs",
    listed: (n) => `${plural(n, "job")} listed.`,
    onReset: () => { table = null; },
    onPage: (rows, cursor) => { jobs = rows; next = cursor; render(); },
  });
  const load = pages.load;

  function render() {
    if (!table) {
      table = pagedTable({
        caption: "Jobs",
        rows: jobs,
        empty: "No jobs yet. Invitations started here or by a webhook show up here.",
        columns: [
          { label: "Created", className: "nowrap", cell: (j) => formatDate(j.createdAt) },
          { label: "Source", cell: (j) => (j.source === "webhook" ? "Webhook" : "Panel") },
          { label: "Kind", cell: (j) => (j.dryRun ? "Dry run" : "Invite") },
          { label: "State", cell: (j) => stateLozenge(j) },
          { label: "Total", className: "num", cell: (j) => count(j.total || 0) },
          { label: "Invited", className: "num", cell: (j) => count((j.counts || {}).invited || 0) },
          { label: "Had access", className: "num", cell: (j) => count((j.counts || {}).alreadyHasAccess || 0) },
          { label: "Invalid", className: "num", cell: (j) => count((j.counts || {}).invalid || 0) },
          { label: "Failed", className: "num", cell: (j) => count((j.counts || {}).failed || 0) },
          { label: "Pending", className: "num", cell: (j) => count((j.counts || {}).pending || 0) },
          { label: "Created by", className: "mono", cell: (j) => j.createdBy || "" },
          { label: "Details", cell: (j) => button("Open", () => open(j.id), { "aria-label": `Open job: ${jobTitle(j)}`, "data-job-id": j.id }) },
        ],
      });
      clear(list, table, pages.note, h("div", { class: "actions" }, older));
    } else {
      table.update(jobs);
    }
    older.hidden = !next;
  }

  // Closing the details puts focus back on the job's Open button (or near it when it is gone).
  function close(jobId) {
    opened += 1;
    detail.setAttribute("aria-busy", "false");
    clear(detail);
    const opener = [...list.querySelectorAll("button[data-job-id]")].find((b) => b.dataset.jobId === jobId);
    const target = opener || list.querySelector(".table-scroll:not([hidden])") || refresh;
    target.focus();
    announce("Closed the job details.");
  }

  async function open(jobId) {
    const mine = ++opened;
    clear(detail, spinner("Loading the job…"));
    detail.setAttribute("aria-busy", "true");
    let job;
    try {
      ({ job } = await call("getJob", { jobId }));
    } catch (err) {
      if (mine === opened) {
        detail.setAttribute("aria-busy", "false");
        clear(detail, message("error", err.message));
        announce(err.message);
      }
      return;
    }
    if (mine !== opened) {
      return;
    }
    // Not busy while it is followed: the progress bar and counts tell how it goes.
    detail.setAttribute("aria-busy", "false");
    let latest = job;
    const bar = progressBar("Job progress");
    const cards = h("div", {}, countCards(job));
    const items = itemsTable(job, "Job items");
    const note = h("div");
    const hint = h("p", { class: "field-hint" });
    const describe = (j) => clear(hint, "State ", stateLozenge(j), ` · created by ${j.createdBy || "unknown"} · updated ${formatDate(j.updatedAt)}`);
    describe(job);
    clear(detail,
      h("div", { class: "block-head" },
        h("h3", { text: jobTitle(job) }),
        h("div", { class: "actions" },
          button("Copy", () => copyText(itemsCsv(latest), "Copied the job's items"), { "aria-label": "Copy job items as CSV" }),
          button("Download CSV", () => download(`job-${job.id}.csv`, itemsCsv(latest)), { "aria-label": "Download CSV of job items" }),
          button("Close", () => close(jobId), { "aria-label": "Close job details" }))),
      hint, bar, cards, note, items);
    bar.update(job);
    detail.focus();
    announce(`Opened ${jobTitle(job)}.`);
    if (finished(job)) {
      return;
    }
    try {
      await pollJob(job.id, (j) => {
        latest = j;
        bar.update(j);
        describe(j);
        clear(cards, countCards(j));
        items.update(j.items || []);
      }, { isCancelled: () => mine !== opened });
    } catch (err) {
      if (mine === opened) {
        clear(note, message("error", `${err.message} The job keeps going on the server; open it again to see how it went.`));
        announce(err.message);
      }
    }
  }

  return { show: () => load(true) };
}

function subjectsText(subjects) {
  if (subjects === undefined || subjects === null) {
    return "";
  }
  if (Array.isArray(subjects)) {
    const shown = subjects.slice(0, 3).map((s) => (typeof s === "string" ? s : JSON.stringify(s)));
    return subjects.length > 3 ? `${shown.join(", ")} and ${count(subjects.length - 3)} more` : shown.join(", ");
  }
  if (typeof subjects === "object") {
    return Object.entries(subjects).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  }
  return String(subjects);
}

function outcomeText(outcome) {
  if (outcome === undefined || outcome === null) {
    return "";
  }
  if (typeof outcome === "object") {
    return Object.entries(outcome).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  }
  return String(outcome);
}

function csvValue(v) {
  return v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
}

export function mountAudit(panel) {
  const list = h("div", { class: "results", "aria-busy": "false" });
  let entries = [];
  let next = null;
  let table = null;
  const older = button("Older", () => load(false), { "aria-label": "Older audit entries" });
  const csv = () => toCsv(["at", "actor", "action", "source", "subjects", "outcome"],
    entries.map((e) => [e.at, e.actor, e.action, e.source, csvValue(e.subjects), csvValue(e.outcome)]));
  const exportBtn = button("Download CSV", () => download("audit.csv", csv()), { "aria-label": "Download CSV of the loaded audit entries" });
  clear(panel,
    h("div", { class: "block-head" }, h("h2", { text: "Audit log" }),
      h("div", { class: "actions" }, button("Refresh", () => load(true)), exportBtn)),
    h("p", { class: "field-hint", text: "Every access check, invitation job, webhook delivery, secret rotation and app event, newest first." }),
    list);

  const pages = cursorPages({
    list, older, resolver: "listAudit", key: "entries", pageSize: AUDIT_PAGE, loading: "Loading the audit log…",
    olderWords: "older audit entries",
    listed: (n) => `${plural(n, "audit entry", "audit entries")} listed.`,
    onReset: () => { table = null; },
    onPage: (rows, cursor) => { entries = rows; next = cursor; render(); },
  });
  const load = pages.load;

  function render() {
    exportBtn.disabled = entries.length === 0;
    if (!table) {
      table = pagedTable({
        caption: "Audit log",
        rows: entries,
        empty: "Nothing has been recorded yet.",
        columns: [
          { label: "When", className: "nowrap", cell: (e) => formatDate(e.at) },
          { label: "Actor", className: "mono", cell: (e) => e.actor || "" },
          { label: "Action", cell: (e) => e.action || "" },
          { label: "Source", cell: (e) => e.source || "" },
          { label: "Subjects", cell: (e) => subjectsText(e.subjects) },
          { label: "Outcome", cell: (e) => outcomeText(e.outcome) },
        ],
      });
      clear(list, table, pages.note, h("div", { class: "actions" }, older));
    } else {
      table.update(entries);
    }
    older.hidden = !next;
  }

  return { show: () => load(true) };
}

