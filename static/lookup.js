// Look up users by account id: lookupUsers -> found / not found / failed.
import { call, failureText } from "./api.js";
import { avatar } from "./avatars.js";
import { copyText, download, toCsv, toLines } from "./csv.js";
import { announce, busy, button, clear, count, h, lozenge, message, plural, spinner, summaryCards } from "./dom.js";
import { pagedTable } from "./table.js";
import { entryForm } from "./forms.js";
import { costLine, lastPool, lookupPoints } from "./quota.js";

const STATUS_TONE = { active: "success", inactive: "moved", closed: "removed", unknown: "default" };
const LOOKUP_BATCH = 2500; // ids per lookupUsers call
// Call errors that every later call would get too: stop there instead of asking again.
const FINAL_ERRORS = new Set(["no_bridge", "invalid_token", "not_allowed"]);
const USER_CSV = ["accountId", "displayName", "publicName", "email", "accountStatus", "accountType", "isExternalCollaborator"];

export function mountLookup(panel) {
  const results = h("div", { class: "results", "aria-busy": "false" });
  const form = entryForm({
    label: "Account ids",
    hint: "Paste Atlassian account ids separated by commas, spaces, semicolons or new lines, or load a CSV file (an “accountId” column, or every cell). Up to 10,000 at once.",
    placeholder: "5b10a2844c20165700ede21g\n712020:0b9e3c8e-…",
    header: /^account[ _-]?id$/i,
    noun: "account id",
    submitLabel: "Look up",
    onSubmit: (ids) => lookup(ids),
    cost: (n) => `Looking them up costs ${costLine(lookupPoints(n), lastPool())} (less for ids looked up in the last minutes).`,
  });
  clear(panel, h("h2", { text: "Look up users" }), form.el, results);

  async function lookup(entries) {
    const ids = [...new Set(entries)];
    const progress = spinner(`Looking up ${plural(ids.length, "account")} (${costLine(lookupPoints(ids.length), lastPool())})…`);
    clear(results, progress);
    announce(`Looking up ${plural(ids.length, "account")}.`);
    await busy(results, async () => {
      // Batches keep each answer far below Forge's 5 MB response cap and show progress. A batch whose
      // call fails lists its ids under failed (the reason in words) and the batches that answered stand,
      // so every id ends up in exactly one of found, not found and failed.
      const merged = { users: [], notFound: [], failed: [] };
      let answered = 0;
      let lastError = null;
      for (let start = 0; start < ids.length; start += LOOKUP_BATCH) {
        if (start > 0) {
          progress.lastChild.textContent = ` Looked up ${count(start)} of ${count(ids.length)}…`;
        }
        const batch = ids.slice(start, start + LOOKUP_BATCH);
        try {
          const answer = await call("lookupUsers", { accountIds: batch });
          for (const key of Object.keys(merged)) {
            merged[key] = merged[key].concat(answer[key] || []);
          }
          answered += 1;
        } catch (err) {
          lastError = err;
          const final = FINAL_ERRORS.has(err.code);
          const unanswered = final ? ids.slice(start) : batch;
          merged.failed = merged.failed.concat(unanswered.map((accountId) => callFailure(accountId, err)));
          if (final) {
            break;
          }
        }
      }
      if (!answered && lastError) {
        // Nothing came back at all: one error says it better than a table of the same reason.
        clear(results, message("error", { title: "Nobody could be looked up", text: lastError.message }));
        return;
      }
      render(merged);
    });
  }

  // The same summary cards as every tool (zero counts left out), then what needs attention first:
  // those that failed, those not found, then the users found.
  function render({ users = [], notFound = [], failed = [] }) {
    const summary = `Found ${plural(users.length, "user")}, ${count(notFound.length)} not found, ${count(failed.length)} failed.`;
    clear(
      results,
      summaryCards([
        { key: "found", label: "Found", tone: "success", value: users.length },
        { key: "failed", label: "Failed", tone: "moved", value: failed.length },
        { key: "notFound", label: "Not found", tone: "default", value: notFound.length },
      ]),
      failed.length ? failedSection(failed) : null,
      notFound.length ? notFoundSection(notFound) : null,
      usersSection(users),
    );
    announce(summary);
  }
}

function usersSection(users) {
  const rows = users.map((u) => [
    u.accountId, u.displayName, u.publicName, u.email, u.accountStatus, u.accountType,
    u.isExternalCollaborator ? "yes" : "no",
  ]);
  const csv = () => toCsv(USER_CSV, rows);
  return h(
    "section",
    { class: "result-block", "aria-labelledby": "found-h" },
    h("div", { class: "block-head" },
      h("h3", { id: "found-h", text: `Found (${users.length.toLocaleString("en")})` }),
      users.length ? h("div", { class: "actions" },
        button("Copy", () => copyText(csv(), `Copied ${plural(users.length, "user")}`), { "aria-label": "Copy found users as CSV" }),
        button("Download CSV", () => download("users.csv", csv()), { "aria-label": "Download CSV of found users" }),
      ) : null),
    pagedTable({
      caption: "Found users",
      rows: users,
      empty: "None of these account ids belong to a user you can see.",
      columns: [
        {
          label: "User",
          cell: (u) => h("span", { class: "user-cell" }, avatar(u), h("span", {},
            h("span", { text: u.displayName || "" }),
            u.publicName && u.publicName !== u.displayName ? h("span", { class: "cell-sub", text: u.publicName }) : null)),
          sort: (u) => u.displayName || "",
        },
        { label: "Email", cell: (u) => (u.email ? u.email : h("span", { class: "subtle", text: "Hidden by their profile settings" })), sort: (u) => u.email || "" },
        { label: "Status", cell: (u) => lozenge(u.accountStatus || "unknown", STATUS_TONE[u.accountStatus] || "default"), sort: (u) => u.accountStatus || "" },
        {
          label: "Type",
          cell: (u) => [u.accountType || "", u.isExternalCollaborator ? [" ", lozenge("external", "discovery")] : null],
          sort: (u) => `${u.accountType || ""}${u.isExternalCollaborator ? " external" : ""}`,
        },
        { label: "Account id", className: "mono", cell: (u) => u.accountId, sort: (u) => u.accountId },
      ],
      search: (u) => `${u.displayName || ""} ${u.publicName || ""} ${u.email || ""} ${u.accountId} ${u.accountStatus || ""}`,
    }),
  );
}

function notFoundSection(ids) {
  const csv = () => toCsv(["accountId"], ids.map((id) => [id]));
  return h(
    "section",
    { class: "result-block", "aria-labelledby": "notfound-h" },
    h("div", { class: "block-head" },
      h("h3", { id: "notfound-h", text: `Not found (${ids.length.toLocaleString("en")})` }),
      h("div", { class: "actions" },
        button("Copy", () => copyText(toLines(ids), `Copied ${plural(ids.length, "account id")}`), { "aria-label": "Copy account ids not found" }),
        button("Download CSV", () => download("not-found.csv", csv()), { "aria-label": "Download CSV of account ids not found" }),
      )),
    h("p", { class: "field-hint", text: "No user with these ids, or their profiles are not visible to you." }),
    pagedTable({ caption: "Account ids not found", rows: ids, search: (id) => id, columns: [{ label: "Account id", className: "mono", cell: (id) => id, sort: (id) => id }] }),
  );
}

// An id whose batch call failed as a whole, shaped like the per-id failures lookupUsers answers.
function callFailure(accountId, err) {
  return { accountId, error: err.code || "failed", reason: err.message };
}

function failureReason(f) {
  return f.reason || failureText(f);
}

function failedSection(failed) {
  const csv = () => toCsv(["accountId", "error", "retryAfter", "reason"],
    failed.map((f) => [f.accountId, f.error, f.retryAfter ?? "", failureReason(f)]));
  return h(
    "section",
    { class: "result-block", "aria-labelledby": "failed-h" },
    h("div", { class: "block-head" },
      h("h3", { id: "failed-h", text: `Failed (${failed.length.toLocaleString("en")})` }),
      h("div", { class: "actions" },
        button("Download CSV", () => download("failed.csv", csv()), { "aria-label": "Download CSV of failed account ids" }),
      )),
    message("warning", { title: "Some account ids could not be looked up", text: "Confluence did not answer for them this time; the rest of the answer stands. Look them up again in a few minutes." }),
    pagedTable({
      caption: "Account ids that failed",
      rows: failed,
      columns: [
        { label: "Account id", className: "mono", cell: (f) => f.accountId },
        { label: "Reason", cell: (f) => failureReason(f) },
      ],
    }),
  );
}
