// @ts-check
// Invite emails: a preview first (a dry run: who would be invited, who is skipped and why, the
// skipped first), with the one primary action on top of it ("Invite N people"), then the real job
// with a progress bar, polled about once a second. Both say how far they got and why they wait, and
// both can be cancelled while they run. A finished invitation says what happened and what to do
// next (invite those not sent, view the job), and clears the form; a new list, even one the form or
// the backend refuses, replaces what was shown at once. A job that finishes while another tab is
// open raises a flag.
import { call } from "./api.js";
import { copyText, download } from "./csv.js";
import { announce, button, clear, count, h, lozenge, message, plural } from "./dom.js";
import { flag } from "./flags.js";
import { fit, pagedTable } from "./table.js";
import { entryForm } from "./forms.js";
import {
  cancelledJob, countCards, countsText, etaText, finished, isWaiting, itemsCsv, itemsTable, notSent, outcomeDetail,
  outcomeLabel, outcomeOf, pacer, pollJob, problemsFirst, processed, progressBar,
} from "./job-view.js";
import { costLine, invitePoints, lastPool } from "./quota.js";

const STALL_MS = 8000; // no progress for this long (and no wait the job names): say it is waiting
// What an invitee gets (docs/platform.md, "What invitees get"): Confluence's invite-by-email takes
// only addresses, and Atlassian gives accounts created by an invitation the site's default access.
const DEFAULT_ACCESS = "Invitees join with this site's default access for new users: the apps and groups set for new users in Atlassian Administration (admin.atlassian.com). Access Desk cannot choose other groups or apps.";

/** @typedef {import("./job-view.js").Job} Job */

/**
 * @param {HTMLElement} panel
 * @param {import("./app.js").Go} [go]
 * @returns {import("./app.js").View}
 */
export function mountInvite(panel, go = {}) {
  const stage = h("div", { class: "results", "aria-busy": "false" });
  const form = entryForm({
    label: "Emails to invite",
    hint: "Paste email addresses, one a line or separated by commas or semicolons (Name <address> and mailto: links work too), or load a CSV file. The preview shows who would be invited before anyone is.",
    placeholder: "new.person@example.com",
    kind: "email",
    noun: "email",
    submitLabel: "Preview invitations",
    onSubmit: (emails) => preview(emails),
    cost: (n) => `The preview costs ${costLine(invitePoints(n, true), lastPool())}; inviting costs about as much again.`,
    onRefused: () => {
      cancelRun();
      clear(stage);
    },
    note: h("p", { class: "field-hint invite-access", text: DEFAULT_ACCESS }),
  });
  clear(panel, h("h2", { text: "Invite to this site" }), form.el, stage);
  // Each preview or invitation is a run; starting another, Cancel or a prefill ends the one before,
  // whose late answers are then dropped.
  let run = 0;
  /** @type {() => void} */
  let stopRun = () => {};

  function cancelRun() {
    run += 1;
    stopRun();
    stopRun = () => {};
    stage.setAttribute("aria-busy", "false");
    form.setPrimary(true);
  }

  // A new run: current() holds until another starts or it is cancelled; `stopped` settles then.
  function startRun() {
    cancelRun();
    const mine = run;
    /** @type {Promise<void>} */
    const stopped = new Promise((resolve) => {
      stopRun = resolve;
    });
    return { current: () => mine === run, stopped };
  }

  // aria-busy only while a request is in flight; the progress bar and announcements tell the rest.
  /**
   * @template T
   * @param {() => boolean} current
   * @param {() => Promise<T>} work
   * @returns {Promise<T>}
   */
  async function request(current, work) {
    stage.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      if (current()) {
        stage.setAttribute("aria-busy", "false");
      }
    }
  }

  // How a running job is going, under its bar: its pace, time left and any wait in one sentence.
  /**
   * @param {HTMLElement} hint
   * @param {Job} job
   * @param {import("./job-view.js").Pacer} pace
   * @param {number} stalledSince
   */
  function progressHint(hint, job, pace, stalledSince) {
    if (finished(job)) {
      hint.textContent = "";
      return;
    }
    const eta = etaText(job, pace);
    const stalled = !isWaiting(job) && Date.now() - stalledSince >= STALL_MS
      ? "Waiting for Confluence, which is busy; the job continues by itself. "
      : "";
    hint.textContent = `${eta ? `${eta}. ` : ""}${stalled}You can leave this page: the job keeps running and is listed under Jobs.`;
  }

  /** @param {string[]} emails */
  async function preview(emails) {
    const { current, stopped } = startRun();
    const bar = progressBar("Preview progress");
    const hint = h("p", { class: "progress-hint" });
    const controls = h("div", { class: "actions" });
    /** @type {string | null} */
    let jobId = null;
    let abandoned = false;
    const stop = button("Cancel preview", async () => {
      abandoned = true;
      stop.disabled = true;
      cancelRun();
      clear(stage, message("info", { title: "Preview cancelled", text: "Nobody was checked further and nobody was invited." }));
      announce("Preview cancelled.");
      form.area.focus();
      if (jobId) {
        await call("cancelJob", { jobId }).catch(() => {}); // the job ends by itself after a day at worst
      }
    }, { id: "preview-cancel" });
    clear(controls, stop);
    bar.pending(`Checking ${plural(emails.length, "email")} (${costLine(invitePoints(emails.length, true), lastPool())})…`);
    clear(stage, h("h3", { text: "Preview" }), bar, hint, controls);
    announce(`Checking ${plural(emails.length, "email")} before inviting.`);
    const pace = pacer();
    let lastChecked = -1;
    let lastMove = Date.now();
    /** @param {Job} job */
    const follow = (job) => {
      pace.add(job);
      bar.update(job);
      if ((job.checked || 0) !== lastChecked) {
        lastChecked = job.checked || 0;
        lastMove = Date.now();
      }
      progressHint(hint, job, pace, lastMove);
    };
    const work = (async () => {
      try {
        const { job } = await request(current, () => call("inviteEmails", { emails, dryRun: true }));
        jobId = job.id;
        if (abandoned) {
          await call("cancelJob", { jobId }).catch(() => {});
        }
        if (!current()) {
          return;
        }
        follow(job);
        const done = finished(job) ? job : await pollJob(job.id, follow, { isCancelled: () => !current() });
        if (current()) {
          showPreview(done);
        }
      } catch (err) {
        if (current()) {
          clear(stage, message("error", { title: "The preview could not be made", text: err.message }));
        }
      }
    })();
    // A cancelled run lets the form go at once, without waiting for its last answer.
    await Promise.race([work, stopped]);
  }

  /** @param {Job} job */
  function showPreview(job) {
    if (job.state === "failed") {
      clear(stage, message("error", { title: "The preview could not finish", text: "Confluence did not answer for every email. Try again in a few minutes." }));
      return;
    }
    const items = job.items || [];
    const invitees = items.filter((it) => it.outcome === "pending").map((it) => it.email);
    const skipped = problemsFirst(items.filter((it) => it.outcome !== "pending"));
    const c = job.counts || {};
    const skippedWords = [
      c.failed ? `${count(c.failed)} could not be checked` : "",
      c.invalid ? `${count(c.invalid)} invalid` : "",
      c.alreadyHasAccess ? `${count(c.alreadyHasAccess)} ${c.alreadyHasAccess === 1 ? "has" : "have"} access` : "",
    ].filter(Boolean);
    const skippedText = skippedWords.length ? `Skipped: ${skippedWords.join(", ")}.` : "Nobody is skipped.";
    const cost = ` Inviting them costs ${costLine(invitePoints(invitees.length), lastPool())}.`;
    const summary = `Would invite ${plural(invitees.length, "person", "people")}. ${skippedText}`;
    const top = invitees.length
      ? h("div", { class: "confirm-bar", role: "group", "aria-labelledby": "invite-confirm-h" },
          h("div", {},
            h("h3", { id: "invite-confirm-h", text: `Invite ${plural(invitees.length, "person", "people")}?` }),
            h("p", { text: `${skippedText} Confluence emails each invitee, who then joins with the site's default access for new users; this cannot be undone from here.${cost}` })),
          h("div", { class: "actions" },
            button(`Invite ${plural(invitees.length, "person", "people")}`, () => invite(invitees, skipped.length, job), { kind: "primary", id: "invite-confirm" }),
            button("Cancel", () => {
              cancelRun();
              clear(stage);
              announce("Invitation cancelled; nobody was invited.");
              form.area.focus();
            })))
      : message("info", { title: "Nobody to invite", text: `Everyone on the list already has access, is invalid or could not be checked. ${skippedText}` });
    // What needs attention first: the skipped (could not be checked, invalid, has access), then
    // the would-be invitees.
    const skippedBlock = skipped.length
      ? h("section", { class: "result-block", "aria-labelledby": "skipped-h" },
          h("h4", { id: "skipped-h", text: `Skipped (${count(skipped.length)})` }),
          pagedTable({
            caption: "Skipped",
            rows: skipped,
            empty: "Nobody is skipped.",
            search: (it) => `${it.email} ${outcomeLabel(it, true)} ${outcomeDetail(it)}`,
            columns: [
              { label: "Email", cell: (it) => fit(it.email, "email"), sort: (it) => it.email },
              { label: "Why", cell: (it) => { const o = outcomeOf(it, true); return lozenge(o.label, o.tone); }, sort: (it) => outcomeLabel(it, true) },
              { label: "Detail", cell: (it) => outcomeDetail(it), text: (it) => outcomeDetail(it) },
            ],
          }))
      : null;
    clear(
      stage,
      h("h3", { text: "Preview" }),
      top,
      countCards(job),
      skippedBlock,
      h("section", { class: "result-block", "aria-labelledby": "would-h" },
        h("h4", { id: "would-h", text: `Would be invited (${count(invitees.length)})` }),
        pagedTable({
          caption: "Would be invited",
          rows: invitees,
          empty: "Nobody.",
          search: (e) => e,
          columns: [{ label: "Email", cell: (e) => fit(e, "email"), sort: (e) => e }],
        })),
    );
    form.setPrimary(invitees.length === 0);
    announce(`Preview ready: ${summary}`);
  }

  // ``skipped``: how many the preview left out (already had access, invalid), named in the result;
  // ``previewJob``: the dry run, shown again when the invitations cannot start.
  /**
   * @param {string[]} emails
   * @param {number} skipped
   * @param {Job | null} previewJob
   */
  async function invite(emails, skipped, previewJob) {
    await runInvitation(() => call("inviteEmails", { emails, dryRun: false }), {
      size: emails.length,
      skipped,
      failedStart: (err) => startFailed(err, emails, skipped, previewJob),
    });
  }

  // An invitation run: `start()` makes the job (inviteEmails, or retryJob for those not sent); it
  // is then followed to its end, with Cancel while it runs and the next actions once it is over.
  /**
   * @param {() => Promise<{job: Job}>} start
   * @param {{size: number, skipped?: number, failedStart: (err: Error) => void}} options
   * @returns {Promise<Job | null | undefined>}
   */
  async function runInvitation(start, { size, skipped = 0, failedStart }) {
    const { current } = startRun();
    form.setPrimary(false);
    const bar = progressBar("Invitation progress");
    bar.pending(`Starting… (${costLine(invitePoints(size), lastPool())})`);
    const cards = h("div");
    const table = h("div");
    const note = h("div");
    const controls = h("div", { class: "actions" });
    const actions = h("div", { class: "actions" });
    /** @type {import("./table.js").PagedTable<import("./job-view.js").JobItem> | null} */
    let items = null;
    /** @type {Job | null} */
    let latest = null;
    const heading = h("h3", { text: "Inviting", tabindex: "-1" });
    const hint = h("p", { class: "progress-hint" });
    clear(stage, heading, bar, hint, controls, cards, note, actions, table);
    heading.focus();
    announce(`Inviting ${plural(size, "person", "people")}.`);
    /** @param {Job} job */
    const describe = (job) => {
      const c = job.counts || {};
      const parts = [`${count(c.invited || 0)} invited`];
      if (c.alreadyHasAccess) parts.push(`${count(c.alreadyHasAccess)} have access`);
      if (c.invalid) parts.push(`${count(c.invalid)} invalid`);
      if (c.failed) parts.push(`${count(c.failed)} failed`);
      return `${count(processed(job))} of ${count(job.total || 0)} processed: ${parts.join(", ")}${c.cancelled ? `; ${count(c.cancelled)} cancelled` : ""}`;
    };
    let lastDone = -1;
    let lastMove = Date.now();
    const pace = pacer();
    /** @param {Job} job */
    const update = (job) => {
      latest = job;
      pace.add(job);
      bar.update(job, describe);
      const done = processed(job);
      if (done !== lastDone) {
        lastDone = done;
        lastMove = Date.now();
      }
      progressHint(hint, job, pace, lastMove);
      clear(controls, finished(job) ? null : button("Cancel invitations", () => stopJob(job.id), { id: "invite-cancel" }));
      clear(cards, countCards(job));
      if (!items) {
        items = itemsTable(job, "Invitation outcomes");
        clear(table, items);
      } else {
        items.update(job.items || []);
      }
    };
    // Cancel: the batch in flight is finished (those people are invited), the rest is not sent.
    /** @param {string} jobId */
    async function stopJob(jobId) {
      controls.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      try {
        const { job } = await call("cancelJob", { jobId });
        if (current() && job) {
          update(job);
        }
        announce("Cancelling: the invitations in flight finish, the rest are not sent.");
      } catch (err) {
        controls.querySelectorAll("button").forEach((b) => { b.disabled = false; });
        clear(note, message("error", { title: "The invitations could not be cancelled", text: err.message }));
      }
    }
    /** @param {string} jobId */
    const follow = async (jobId) => {
      clear(note);
      try {
        const job = await pollJob(jobId, update, { isCancelled: () => !current() });
        if (current()) {
          ended(job);
        }
      } catch (err) {
        if (!current()) {
          return;
        }
        clear(note, message("error", `${err.message} The job keeps going on the server.`,
          button("Check again", () => {
            heading.focus(); // the button goes away with the message
            follow(jobId);
          })));
        announce(err.message);
      }
    };

    // What happened, and what to do next: invite those not sent, view the job, invite more.
    /** @param {Job} job */
    function ended(job) {
      const c = job.counts || {};
      const left = notSent(job);
      const cancelled = cancelledJob(job);
      const stoppedEarly = job.state === "failed" && !cancelled;
      const done = `${count(c.invited || 0)} invited${c.alreadyHasAccess ? `, ${count(c.alreadyHasAccess)} have access` : ""}${c.invalid ? `, ${count(c.invalid)} invalid` : ""}`;
      const problems = [c.failed ? `${count(c.failed)} failed` : "", c.cancelled ? `${count(c.cancelled)} not sent (cancelled)` : ""].filter(Boolean).join(", ");
      const skippedNote = skipped ? ` The ${plural(skipped, "person", "people")} skipped in the preview ${skipped === 1 ? "was" : "were"} not invited.` : "";
      const joinNote = c.invited ? " Confluence emails each invitee; Access Desk checks in about an hour who has joined (see the job under Jobs)." : "";
      /** @type {"success" | "info" | "error" | "warning"} */
      let tone = "success";
      let title = "Invitations finished";
      let words = `Done: ${done}.${skippedNote}${joinNote}`;
      if (cancelled) {
        tone = "info";
        title = "Invitations cancelled";
        words = `${done[0].toUpperCase()}${done.slice(1)} before the cancel; ${count(c.cancelled || 0)} not sent${c.failed ? `, ${count(c.failed)} failed` : ""}.${joinNote}`;
      } else if (stoppedEarly) {
        tone = "error";
        title = "Invitations stopped";
        words = `The invitation job stopped before it finished: ${done}; ${problems || "nothing else was sent"}.`;
      } else if (c.failed) {
        tone = "warning";
        words = `Done: ${done}; ${problems}. The table lists why.${skippedNote}${joinNote}`;
      }
      heading.textContent = title;
      clear(controls);
      const retry = left
        ? button(`Invite the ${plural(left, "person", "people")} not sent`, () => retryNotSent(job, left), { kind: "primary", id: "invite-retry" })
        : null;
      clear(note, message(tone, words,
        h("div", { class: "actions" },
          retry,
          go.openJob ? button("View in Jobs", () => go.openJob?.(job.id), { id: "invite-view-job" }) : null,
          button("Invite more people", () => {
            form.area.focus();
          }))));
      clear(actions,
        button("Copy", () => copyText(itemsCsv(job), "Copied the outcomes"), { "aria-label": "Copy invitation outcomes as CSV" }),
        button("Download CSV", () => download("invitations.csv", itemsCsv(job)), { "aria-label": "Download CSV of invitation outcomes" }));
      form.setPrimary(!left);
      if (!stoppedEarly) {
        form.setValue(""); // this list is done: the form is ready for the next one
      }
      if (panel.hidden) {
        // Finished while the admin is on another tab: say so there.
        flag(tone === "success" ? "success" : tone === "info" ? "info" : "warning", title, countsText(job),
          go.openJob ? [{ label: "View job", onClick: () => go.openJob?.(job.id) }] : []);
      } else {
        announce(words);
      }
    }

    /** @type {Job} */
    let job;
    try {
      ({ job } = await request(current, start));
    } catch (err) {
      if (current()) {
        failedStart(err);
      }
      return;
    }
    if (!current()) {
      return;
    }
    update(job);
    await follow(job.id);
    return latest;
  }

  // "Invite the N not sent": the job's retry (retryJob: one retry per job), followed here.
  /**
   * @param {Job} job
   * @param {number} left
   */
  async function retryNotSent(job, left) {
    await runInvitation(() => call("retryJob", { jobId: job.id }), {
      size: left,
      failedStart: (err) => {
        const heading = h("h3", { text: "The invitations were not sent", tabindex: "-1" });
        clear(stage,
          heading,
          message("error", { title: "Nobody was invited", text: err.message }),
          go.openJob ? h("div", { class: "actions" }, button("View the job in Jobs", () => go.openJob?.(job.id))) : null);
        heading.focus();
        announce(`The invitations were not sent: ${err.message}`);
      },
    });
  }

  // The invitation job could not be started: nobody was invited. Try again, or back to the preview.
  /**
   * @param {Error} err why the call that starts the job failed (an ApiError)
   * @param {string[]} emails
   * @param {number} skipped
   * @param {Job | null} previewJob
   */
  function startFailed(err, emails, skipped, previewJob) {
    const heading = h("h3", { text: "The invitations were not sent", tabindex: "-1" });
    const back = previewJob
      ? button("Back to the preview", () => {
          cancelRun();
          showPreview(previewJob);
          const confirm = stage.querySelector("#invite-confirm");
          if (confirm instanceof HTMLElement) {
            confirm.focus();
          }
        })
      : null;
    clear(stage,
      heading,
      message("error", { title: "Nobody was invited", text: err.message }),
      h("div", { class: "actions" },
        button("Try again", () => invite(emails, skipped, previewJob), { kind: "primary" }),
        back));
    heading.focus();
    announce(`The invitations were not sent: ${err.message} Nobody was invited.`);
  }

  return {
    // The list from Check access: whatever ran here before (a slow dry run) is dropped.
    prefill(emails) {
      cancelRun();
      form.setValue(emails.join("\n"));
      clear(stage);
    },
    show() {},
  };
}
