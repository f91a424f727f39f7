// Invite emails: a dry run first (who would be invited, who is skipped and why), a confirm step, then
// the real job with a progress bar, polled about once a second.
import { call } from "./api.js";
import {
  announce, busy, button, clear, copyText, count, download, h, message, pagedTable, plural, spinner,
} from "./dom.js";
import { entryForm } from "./forms.js";
import { countCards, finished, itemsCsv, itemsTable, outcomeDetail, outcomeLabel, pollJob, progressBar } from "./job.js";

export function mountInvite(panel) {
  const stage = h("div", { class: "results", "aria-busy": "false" });
  const form = entryForm({
    label: "Emails to invite",
    hint: "Paste email addresses separated by commas, spaces, semicolons or new lines, or load a CSV file. A dry run shows who would be invited before anyone is.",
    placeholder: "new.person@example.com",
    header: /^e-?mail( address)?$/i,
    caseless: true,
    noun: "email",
    submitLabel: "Preview invitations",
    onSubmit: (emails) => preview(emails),
  });
  clear(panel, h("h2", { text: "Invite to this site" }), form.el, stage);
  let run = 0;

  async function preview(emails) {
    const mine = ++run;
    const bar = progressBar("Dry run progress");
    clear(stage, spinner(`Checking ${plural(emails.length, "email")} (dry run)…`), bar);
    announce(`Checking ${plural(emails.length, "email")} before inviting.`);
    await busy(stage, async () => {
      try {
        const { job } = await call("inviteEmails", { emails, dryRun: true });
        bar.update(job);
        const done = finished(job) ? job : await pollJob(job.id, (j) => bar.update(j), { isCancelled: () => mine !== run });
        if (mine === run) {
          showPreview(done);
        }
      } catch (err) {
        if (mine === run) {
          clear(stage, message("error", err.message));
          announce(err.message);
        }
      }
    });
  }

  function showPreview(job) {
    if (job.state === "failed") {
      clear(stage, message("error", "The dry run could not finish. Try again in a moment."));
      announce("The dry run could not finish.");
      return;
    }
    const items = job.items || [];
    const invitees = items.filter((it) => it.outcome === "pending").map((it) => it.email);
    const skipped = items.filter((it) => it.outcome !== "pending");
    const summary = `${plural(invitees.length, "person", "people")} would be invited; ${count(skipped.length)} skipped.`;
    const confirmBox = invitees.length
      ? h("div", { class: "confirm", role: "group", "aria-labelledby": "invite-confirm-h" },
          h("h3", { id: "invite-confirm-h", text: `Invite ${plural(invitees.length, "person", "people")}?` }),
          h("p", { text: "Confluence emails each of them an invitation to this site. This cannot be undone from here." }),
          h("div", { class: "actions" },
            button(`Invite ${plural(invitees.length, "person", "people")}`, () => invite(invitees, skipped.length), { kind: "primary", id: "invite-confirm" }),
            button("Cancel", () => {
              run += 1;
              clear(stage);
              announce("Invitation cancelled; nobody was invited.");
              form.area.focus();
            })))
      : message("info", "Nobody to invite: everyone on the list already has access, is invalid or could not be checked.");
    clear(
      stage,
      h("h3", { text: "Preview" }),
      h("p", { class: "summary", text: summary }),
      countCards(job),
      h("section", { class: "result-block", "aria-labelledby": "would-h" },
        h("h4", { id: "would-h", text: `Would be invited (${count(invitees.length)})` }),
        pagedTable({
          caption: "Would be invited",
          rows: invitees,
          empty: "Nobody.",
          columns: [{ label: "Email", cell: (e) => e }],
        })),
      h("section", { class: "result-block", "aria-labelledby": "skipped-h" },
        h("h4", { id: "skipped-h", text: `Skipped (${count(skipped.length)})` }),
        pagedTable({
          caption: "Skipped",
          rows: skipped,
          empty: "Nobody is skipped.",
          columns: [
            { label: "Email", cell: (it) => it.email },
            { label: "Why", cell: (it) => [outcomeLabel(it, true), outcomeDetail(it) ? `: ${outcomeDetail(it)}` : ""].join("") },
          ],
        })),
      confirmBox,
    );
    announce(`Dry run finished: ${summary}`);
  }

  // ``skipped``: how many the preview left out (already had access, invalid), named in the result.
  async function invite(emails, skipped) {
    const mine = ++run;
    const bar = progressBar("Invitation progress");
    const cards = h("div");
    const table = h("div");
    const note = h("div");
    const actions = h("div", { class: "actions" });
    let items = null;
    const heading = h("h3", { text: "Inviting" });
    clear(stage, heading, bar, cards, note, actions, table);
    announce(`Inviting ${plural(emails.length, "person", "people")}.`);
    const describe = (job, done, total) => {
      const c = job.counts || {};
      return `${count(done)} of ${count(total)} processed: ${count(c.invited || 0)} invited, ${count(c.alreadyHasAccess || 0)} already had access, ${count(c.invalid || 0)} invalid, ${count(c.failed || 0)} failed`;
    };
    const update = (job) => {
      bar.update(job, describe);
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
        const job = await pollJob(jobId, update, { isCancelled: () => mine !== run });
        if (mine !== run) {
          return;
        }
        const c = job.counts || {};
        const words = job.state === "failed"
          ? `The invitation job stopped before it finished${typeof job.error === "string" ? ` (${job.error})` : ""}; the outcomes so far are listed below.`
          : `Done: ${count(c.invited || 0)} invited, ${count(c.alreadyHasAccess || 0)} already had access, ${count(c.invalid || 0)} invalid, ${count(c.failed || 0)} failed.`
            + (skipped ? ` The ${plural(skipped, "person", "people")} skipped in the preview ${skipped === 1 ? "was" : "were"} not invited.` : "");
        heading.textContent = job.state === "failed" ? "Invitations stopped" : "Invitations finished";
        clear(note, message(job.state === "failed" ? "error" : "success", words));
        clear(actions,
          button("Copy", () => copyText(itemsCsv(job), "Copied the outcomes"), { "aria-label": "Copy invitation outcomes as CSV" }),
          button("Download CSV", () => download("invitations.csv", itemsCsv(job)), { "aria-label": "Download CSV of invitation outcomes" }));
        announce(words);
      } catch (err) {
        if (mine !== run) {
          return;
        }
        clear(note, message("error", `${err.message} The job keeps going on the server.`,
          button("Check again", () => follow(jobId))));
        announce(err.message);
      }
    };
    await busy(stage, async () => {
      try {
        const { job } = await call("inviteEmails", { emails, dryRun: false });
        update(job);
        await follow(job.id);
      } catch (err) {
        clear(note, message("error", err.message));
        announce(err.message);
      }
    });
  }

  return {
    prefill(emails) {
      form.setValue(emails.join("\n"));
      clear(stage);
    },
  };
}
