// @ts-check
// Look up users by account id: lookupUsers -> found / not found / failed. Failures are said once per
// cause (causes.js); deactivated and closed accounts are marked and never handed on to invite.
import { call, failureText } from "./api.js";
import { avatar } from "./avatars.js";
import { causeMessages } from "./causes.js";
import { copyText, download, toCsv, toLines } from "./csv.js";
import { announce, busy, button, clear, count, h, lozenge, message, plural, spinner, summaryCards } from "./dom.js";
import { fit, pagedTable } from "./table.js";
import { entryForm } from "./forms.js";
import { costLine, lastPool, lookupPoints } from "./quota.js";

// accountStatus in words and colours: Atlassian Administration calls an inactive account deactivated.
/**
 * A user as lookupUsers answers it (docs/contract.md).
 * @typedef {object} User
 * @property {string} accountId
 * @property {string} [displayName]
 * @property {string} [publicName]
 * @property {string | null} [email]
 * @property {string} [accountStatus] active | inactive | closed
 * @property {string} [accountType]
 * @property {boolean} [isExternalCollaborator]
 * @property {{path?: string, isDefault?: boolean}} [profilePicture]
 */
/**
 * An account id that could not be looked up: lookupUsers's, or a whole call's (its words in `reason`).
 * @typedef {{accountId: string, error?: string, retryAfter?: number, reason?: string}} Failure
 */
/** @typedef {{users: User[], notFound: string[], failed: Failure[]}} Found */

/** @type {Record<string, import("./job-view.js").Look>} */
const STATUS = {
  active: { label: "Active", tone: "success" },
  inactive: { label: "Deactivated", tone: "moved" },
  closed: { label: "Closed", tone: "removed" },
};
/** @param {User} u */
const status = (u) => STATUS[u.accountStatus ?? ""] || { label: u.accountStatus || "Unknown", tone: "default" };
// Who could be invited by email: an active account whose email Confluence shows.
/**
 * @param {User} u
 * @returns {u is User & {email: string}}
 */
const invitable = (u) => u.accountStatus === "active" && Boolean(u.email);
const LOOKUP_BATCH = 2500; // ids per lookupUsers call
// Call errors that every later call would get too: stop there instead of asking again.
const FINAL_ERRORS = new Set(["no_bridge", "invalid_token", "not_allowed"]);
const USER_CSV = ["accountId", "displayName", "publicName", "email", "accountStatus", "accountType", "isExternalCollaborator"];

// go.checkThese(emails), when given (administrators), opens Check access with those emails.
/**
 * @param {HTMLElement} panel
 * @param {Pick<import("./app.js").Go, "checkThese">} [go]
 */
export function mountLookup(panel, go = {}) {
  const results = h("div", { class: "results", "aria-busy": "false" });
  const form = entryForm({
    label: "Account ids",
    hint: "Paste Atlassian account ids, one a line or separated by commas or semicolons, or load a CSV file (an “accountId” column, or every cell). A column header on the first line is left out. Up to 10,000 at once.",
    placeholder: "5b10a2844c20165700ede21g\n712020:0b9e3c8e-…",
    kind: "accountId",
    noun: "account id",
    submitLabel: "Look up",
    onSubmit: (ids) => lookup(ids),
    cost: (n) => `Looking them up costs ${costLine(lookupPoints(n), lastPool())} (less for ids looked up in the last minutes).`,
  });
  clear(panel, h("h2", { text: "Look up users" }), form.el, results);

  /** @param {string[]} entries */
  async function lookup(entries) {
    const ids = [...new Set(entries)];
    const progress = spinner(`Looking up ${plural(ids.length, "account")} (${costLine(lookupPoints(ids.length), lastPool())})…`);
    clear(results, progress);
    announce(`Looking up ${plural(ids.length, "account")}.`);
    await busy(results, async () => {
      // Batches keep each answer far below Forge's 5 MB response cap and show progress. A batch whose
      // call fails lists its ids under failed (the reason in words) and the batches that answered stand,
      // so every id ends up in exactly one of found, not found and failed.
      /** @type {Found} lookupUsers's lists, merged */
      const merged = { users: [], notFound: [], failed: [] };
      let answered = 0;
      /** @type {Error | null} */
      let lastError = null;
      for (let start = 0; start < ids.length; start += LOOKUP_BATCH) {
        const words = progress.lastChild; // spinner()'s label
        if (start > 0 && words) {
          words.textContent = ` Looked up ${count(start)} of ${count(ids.length)}…`;
        }
        const batch = ids.slice(start, start + LOOKUP_BATCH);
        try {
          const answer = await call("lookupUsers", { accountIds: batch });
          merged.users = merged.users.concat(answer.users || []);
          merged.notFound = merged.notFound.concat(answer.notFound || []);
          merged.failed = merged.failed.concat(answer.failed || []);
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
  /** @param {Partial<Found>} found */
  function render({ users = [], notFound = [], failed = [] }) {
    const none = !users.length && !notFound.length && failed.length > 0;
    const summary = none
      ? `None of the ${plural(failed.length, "account id")} could be looked up.`
      : `Found ${plural(users.length, "user")}, ${count(notFound.length)} not found, ${count(failed.length)} failed.`;
    clear(
      results,
      none ? h("p", { class: "summary", text: summary }) : null, // otherwise the cards say it
      summaryCards([
        { key: "found", label: "Found", tone: "success", value: users.length },
        { key: "failed", label: "Failed", tone: "moved", value: failed.length },
        { key: "notFound", label: "Not found", tone: "default", value: notFound.length },
      ]),
      causeMessages(failed, {
        noun: "account id",
        done: "looked up",
        refused: "Accounts that may not view user profiles on this site (external collaborators, for example) cannot look users up: ask a Confluence administrator to look them up for you.",
      }),
      failed.length ? failedSection(failed) : null,
      notFound.length ? notFoundSection(notFound) : null,
      users.length || !failed.length ? usersSection(users, go) : null,
    );
    announce(summary);
  }
}

// The email column: the address, or why there is none (a closed account has none at all; an
// active one hides it in their profile settings).
/** @param {User} u */
function emailCell(u) {
  if (u.email) {
    return fit(u.email, "email");
  }
  return h("span", { class: "subtle", text: u.accountStatus === "closed" ? "Closed account" : "Hidden by their profile settings" });
}

/**
 * @param {User[]} users
 * @param {Pick<import("./app.js").Go, "checkThese">} go
 */
function usersSection(users, go) {
  const rows = users.map((u) => [
    u.accountId, u.displayName, u.publicName, u.email, u.accountStatus, u.accountType,
    u.isExternalCollaborator ? "yes" : "no",
  ]);
  const csv = () => toCsv(USER_CSV, rows);
  const gone = users.filter((u) => u.accountStatus === "inactive" || u.accountStatus === "closed");
  const hidden = users.filter((u) => u.accountStatus === "active" && !u.email).length;
  const emails = users.filter(invitable).map((u) => u.email);
  const deactivated = gone.filter((u) => u.accountStatus === "inactive").length;
  const closed = gone.length - deactivated;
  const goneWords = [deactivated ? plural(deactivated, "deactivated account") : "", closed ? plural(closed, "closed account") : ""].filter(Boolean).join(" and ");
  const notes = [
    gone.length
      ? `${goneWords}: ${gone.length === 1 ? "it cannot" : "they cannot"} sign in, and Access Desk does not offer ${gone.length === 1 ? "it" : "them"} for invitation. Reactivate a deactivated account in Atlassian Administration (admin.atlassian.com) instead; a closed account cannot be used again.`
      : "",
    hidden ? `${plural(hidden, "user hides", "users hide")} their email address in their profile settings, so it cannot be checked or invited from here.` : "",
  ].filter(Boolean);
  return h(
    "section",
    { class: "result-block", "aria-labelledby": "found-h" },
    h("div", { class: "block-head" },
      h("h3", { id: "found-h", text: `Found (${users.length.toLocaleString("en")})` }),
      users.length ? h("div", { class: "actions" },
        go.checkThese && emails.length
          ? button(`Check access for ${plural(emails.length, "email")}…`, () => go.checkThese?.(emails), { kind: "primary", "aria-describedby": notes.length ? "found-notes" : null })
          : null,
        button("Copy", () => copyText(csv(), `Copied ${plural(users.length, "user")}`), { "aria-label": "Copy found users as CSV" }),
        button("Download CSV", () => download("users.csv", csv()), { "aria-label": "Download CSV of found users" }),
      ) : null),
    notes.length ? h("div", { id: "found-notes", class: "field-hint found-notes" }, notes.map((text) => h("p", { text }))) : null,
    pagedTable({
      caption: "Found users",
      rows: users,
      empty: "None of these account ids belong to a user you can see.",
      rowAttrs: (u) => (u.accountStatus === "inactive" || u.accountStatus === "closed" ? { class: "row-gone" } : {}),
      columns: [
        {
          label: "User",
          cell: (u) => h("span", { class: "user-cell" }, avatar(u), h("span", { class: "user-names" },
            fit(u.displayName || "", "name"),
            u.publicName && u.publicName !== u.displayName ? fit(u.publicName, "name", "cell-sub") : null)),
          sort: (u) => u.displayName || "",
        },
        { label: "Email", cell: emailCell, sort: (u) => u.email || "" },
        { label: "Status", cell: (u) => lozenge(status(u).label, status(u).tone), sort: (u) => status(u).label },
        {
          label: "Type",
          cell: (u) => [u.accountType || "", u.isExternalCollaborator ? [" ", lozenge("external", "discovery")] : null],
          sort: (u) => `${u.accountType || ""}${u.isExternalCollaborator ? " external" : ""}`,
        },
        { label: "Account id", className: "mono", cell: (u) => fit(u.accountId, "id"), sort: (u) => u.accountId },
      ],
      search: (u) => `${u.displayName || ""} ${u.publicName || ""} ${u.email || ""} ${u.accountId} ${status(u).label}`,
    }),
  );
}

/** @param {string[]} ids */
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
    h("p", { class: "field-hint", text: "No account has these ids, or Confluence does not show their profiles to you." }),
    pagedTable({ caption: "Account ids not found", rows: ids, search: (id) => id, columns: [{ label: "Account id", className: "mono", cell: (id) => fit(id, "id"), sort: (id) => id }] }),
  );
}

// An id whose batch call failed as a whole, shaped like the per-id failures lookupUsers answers.
/**
 * @param {string} accountId
 * @param {{code?: string, message: string}} err
 */
function callFailure(accountId, err) {
  return { accountId, error: err.code || "failed", reason: err.message };
}

/** @param {Failure} f */
function failureReason(f) {
  return f.reason || failureText(f);
}

/** @param {Failure[]} failed */
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
    pagedTable({
      caption: "Account ids that failed",
      rows: failed,
      columns: [
        { label: "Account id", className: "mono", cell: (f) => fit(f.accountId, "id") },
        { label: "Reason", cell: (f) => failureReason(f) },
      ],
    }),
  );
}
