// Invite emails: a preview first (a dry run: who would be invited, who is skipped and why), with the
// one primary action on top of it ("Invite N people"), then the real job with a progress bar, polled
// about once a second. A finished invitation clears the form; a new list, even one the form or the
// backend refuses, replaces what was shown at once. A job that finishes while another tab is open
// raises a flag.
import { call } from "./api.js";
import { copyText, download } from "./csv.js";
import { announce, button, clear, count, h, message, plural } from "./dom.js";
import { flag } from "./flags.js";
import { fit, pagedTable } from "./table.js";
import { entryForm } from "./forms.js";
import {
  countCards, countsText, etaText, finished, isWaiting, itemsCsv, itemsTable, outcomeDetail, outcomeLabel, pacer, pollJob, processed,
  progressBar,
} from "./job-view.js";
import { costLine, invitePoints, lastPool } from "./quota.js";

const STALL_MS = 8000; // no progress for this long: say the job is waiting
// What an invitee gets (docs/platform.md, "What invitees get"): Confluence's invite-by-email takes
// only addresses, and Atlassian gives accounts created by an invitation the site's default access.
const DEFAULT_ACCESS = "Invitees join with this site's default access for new users: the apps and groups set for new users in Atlassian Administration (admin.atlassian.com). Access Desk cannot choose other groups or apps.";

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
    const stopped = new Promise((resolve) => {
      stopRun = resolve;
    });
    return { current: () => mine === run, stopped };
  }

  // aria-busy only while a request is in flight; the progress bar and announcements tell the rest.
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

  async function preview(emails) {
    const { current, stopped } = startRun();
    const bar = progressBar("Preview progress");
    bar.pending(`Checking ${plural(emails.length, "email")} (${costLine(invitePoints(emails.length, true), lastPool())})…`);
    clear(stage, h("h3", { text: "Preview" }), bar);
    announce(`Checking ${plural(emails.length, "email")} before inviting.`);
    const work = (async () => {
      try {
        const { job } = await request(current, () => call("inviteEmails", { emails, dryRun: true }));
        if (!current()) {
          return;
        }
        bar.update(job);
        const done = finished(job) ? job : await pollJob(job.id, (j) => bar.update(j), { isCancelled: () => !current() });
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

  function showPreview(job) {
    if (job.state === "failed") {
      clear(stage, message("error", { title: "The preview could not finish", text: "Confluence did not answer for every email. Try again in a few minutes." }));
      return;
    }
    const items = job.items || [];
    const invitees = items.filter((it) => it.outcome === "pending").map((it) => it.email);
    const skipped = items.filter((it) => it.outcome !== "pending");
    const c = job.counts || {};
    const skippedWords = [
      c.alreadyHasAccess ? `${count(c.alreadyHasAccess)} ${c.alreadyHasAccess === 1 ? "has" : "have"} access` : "",
      c.invalid ? `${count(c.invalid)} invalid` : "",
      c.failed ? `${count(c.failed)} could not be checked` : "",
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
    clear(
      stage,
      h("h3", { text: "Preview" }),
      top,
      countCards(job),
      h("section", { class: "result-block", "aria-labelledby": "would-h" },
        h("h4", { id: "would-h", text: `Would be invited (${count(invitees.length)})` }),
        pagedTable({
          caption: "Would be invited",
          rows: invitees,
          empty: "Nobody.",
          search: (e) => e,
          columns: [{ label: "Email", cell: (e) => fit(e, "email"), sort: (e) => e }],
        })),
      h("section", { class: "result-block", "aria-labelledby": "skipped-h" },
        h("h4", { id: "skipped-h", text: `Skipped (${count(skipped.length)})` }),
        pagedTable({
          caption: "Skipped",
          rows: skipped,
          empty: "Nobody is skipped.",
          search: (it) => `${it.email} ${outcomeLabel(it, true)}`,
          columns: [
            { label: "Email", cell: (it) => fit(it.email, "email"), sort: (it) => it.email },
            { label: "Why", cell: (it) => [outcomeLabel(it, true), outcomeDetail(it) ? `: ${outcomeDetail(it)}` : ""].join(""), sort: (it) => outcomeLabel(it, true) },
          ],
        })),
    );
    form.setPrimary(invitees.length === 0);
    announce(`Preview ready: ${summary}`);
  }

  // ``skipped``: how many the preview left out (already had access, invalid), named in the result;
  // ``previewJob``: the dry run, shown again when the invitations cannot start.
  async function invite(emails, skipped, previewJob) {
    const { current } = startRun();
    form.setPrimary(false);
    const bar = progressBar("Invitation progress");
    bar.pending(`Starting… (${costLine(invitePoints(emails.length), lastPool())})`);
    const cards = h("div");
    const table = h("div");
    const note = h("div");
    const actions = h("div", { class: "actions" });
    let items = null;
    const heading = h("h3", { text: "Inviting", tabindex: "-1" });
    const hint = h("p", { class: "progress-hint" });
    clear(stage, heading, bar, hint, cards, note, actions, table);
    heading.focus();
    announce(`Inviting ${plural(emails.length, "person", "people")}.`);
    const describe = (job, done, total) => {
      const c = job.counts || {};
      return `${count(done)} of ${count(total)} processed: ${count(c.invited || 0)} invited, ${count(c.alreadyHasAccess || 0)} have access, ${count(c.invalid || 0)} invalid, ${count(c.failed || 0)} failed`;
    };
    // The job's JSON says nothing of waits: no progress for a while means Confluence is busy or
    // asked us to slow down (Retry-After), and the job resumes by itself.
    let lastDone = -1;
    let lastMove = Date.now();
    const pace = pacer();
    const update = (job) => {
      pace.add(job);
      bar.update(job, describe);
      const done = processed(job);
      if (done !== lastDone) {
        lastDone = done;
        lastMove = Date.now();
      }
      // One explanation of a wait: the job's own (etaText says what it waits for and until when), or,
      // when it says nothing and nothing moves, that Confluence is slow.
      const waiting = !isWaiting(job) && Date.now() - lastMove >= STALL_MS
        ? "Waiting for Confluence, which is busy or asked Access Desk to slow down; the job continues by itself. "
        : "";
      const eta = etaText(job, pace);
      hint.textContent = finished(job) ? "" : `${eta ? `${eta}. ` : ""}${waiting}You can leave this page: the job keeps running and is listed under Jobs.`;
      clear(cards, countCards(job));
      if (!items) {
        items = itemsTable(job, "Invitation outcomes");
        clear(table, items);
      } else {
        items.update(job.items || []);
      }
    };
    const follow = async (jobId) => {
      clear(note);
      try {
        const job = await pollJob(jobId, update, { isCancelled: () => !current() });
        if (!current()) {
          return;
        }
        const c = job.counts || {};
        const words = job.state === "failed"
          ? `The invitation job stopped before it finished${typeof job.error === "string" ? ` (${job.error})` : ""}; the outcomes so far are listed below.`
          : `Done: ${count(c.invited || 0)} invited, ${count(c.alreadyHasAccess || 0)} have access, ${count(c.invalid || 0)} invalid, ${count(c.failed || 0)} failed.`
            + (skipped ? ` The ${plural(skipped, "person", "people")} skipped in the preview ${skipped === 1 ? "was" : "were"} not invited.` : "");
        heading.textContent = job.state === "failed" ? "Invitations stopped" : "Invitations finished";
        clear(note, message(job.state === "failed" ? "error" : "success", words));
        clear(actions,
          button("Copy", () => copyText(itemsCsv(job), "Copied the outcomes"), { "aria-label": "Copy invitation outcomes as CSV" }),
          button("Download CSV", () => download("invitations.csv", itemsCsv(job)), { "aria-label": "Download CSV of invitation outcomes" }),
          go.openJob ? button("Open in Jobs", () => go.openJob(job.id)) : null);
        if (job.state !== "failed") {
          form.setValue(""); // this list is done: the form is ready for the next one
        }
        if (panel.hidden) {
          // Finished while the admin is on another tab: say so there.
          flag(job.state === "failed" ? "warning" : "success",
            job.state === "failed" ? "Invitations stopped" : "Invitations finished", countsText(job),
            go.openJob ? [{ label: "View job", onClick: () => go.openJob(job.id) }] : []);
        } else {
          announce(words);
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

    let job;
    try {
      ({ job } = await request(current, () => call("inviteEmails", { emails, dryRun: false })));
    } catch (err) {
      if (current()) {
        startFailed(err, emails, skipped, previewJob);
      }
      return;
    }
    if (!current()) {
      return;
    }
    update(job);
    await follow(job.id);
  }

  // The invitation job could not be started: nobody was invited. Try again, or back to the preview.
  function startFailed(err, emails, skipped, previewJob) {
    const heading = h("h3", { text: "The invitations were not sent", tabindex: "-1" });
    const back = previewJob
      ? button("Back to the preview", () => {
          cancelRun();
          showPreview(previewJob);
          const confirm = stage.querySelector("#invite-confirm");
          if (confirm) {
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
