// @ts-check
// Check which emails have access: checkAccess -> without access / with access / invalid / failed.
import { call, failureText } from "./api.js";
import { causeMessages } from "./causes.js";
import { copyText, download, toCsv } from "./csv.js";
import { announce, busy, button, clear, count, h, lozenge, message, plural, spinner, summaryCards } from "./dom.js";
import { fit, pagedTable } from "./table.js";
import { entryForm } from "./forms.js";
import { costLine, invitePoints, lastPool } from "./quota.js";

// The same words and colours as an invitation's outcomes (job.js OUTCOMES): "Has access" is blue
// wherever it shows, "No access" (who an invitation would reach) purple, "Invalid email" red,
// "Failed" yellow.
/**
 * checkAccess's answer: the emails of each bucket (a failed one with why, docs/contract.md).
 * @typedef {{withoutAccess?: string[], withAccess?: string[], invalid?: string[],
 *   failed?: {email: string, error?: string, retryAfter?: number}[]}} Checked
 */
/** @typedef {{key: keyof Checked, label: string, tone: string}} Bucket */
/** @type {Bucket[]} */
export const BUCKETS = [
  { key: "withoutAccess", label: "No access", tone: "discovery" },
  { key: "withAccess", label: "Has access", tone: "info" },
  { key: "invalid", label: "Invalid email", tone: "removed" },
  { key: "failed", label: "Failed", tone: "moved" },
];

/**
 * @param {HTMLElement} panel
 * @param {Pick<import("./app.js").Go, "inviteThese">} go
 * @returns {import("./app.js").View}
 */
export function mountAccess(panel, { inviteThese }) {
  const results = h("div", { class: "results", "aria-busy": "false" });
  const form = entryForm({
    label: "Emails",
    hint: "Paste email addresses, one a line or separated by commas or semicolons (Name <address> and mailto: links work too), or load a CSV file (an “email” column, or every cell). A column header on the first line is left out. Up to 10,000 at once.",
    placeholder: "ada@example.com, grace@example.com",
    kind: "email",
    noun: "email",
    submitLabel: "Check access",
    onSubmit: (emails) => check(emails),
    cost: (n) => `Checking them costs ${costLine(invitePoints(n, true), lastPool())}.`,
  });
  clear(panel, h("h2", { text: "Check access" }), form.el, results);

  /** @param {string[]} emails */
  async function check(emails) {
    clear(results, spinner(`Checking ${plural(emails.length, "email")}…`));
    announce(`Checking ${plural(emails.length, "email")}.`);
    await busy(results, async () => {
      try {
        render(await call("checkAccess", { emails }));
      } catch (err) {
        clear(results, message("error", { title: "The emails could not be checked", text: err.message }));
      }
    });
  }

  // What needs attention first: failed, invalid, then no access and has access.
  /** @type {Bucket["key"][]} */
  const ORDER = ["failed", "invalid", "withoutAccess", "withAccess"];

  /** @param {Checked} answer */
  function render(answer) {
    /** @type {{email: string, bucket: Bucket, detail: string, entry: unknown}[]} */
    const rows = [];
    for (const bucket of ORDER.map((k) => BUCKETS.find((b) => b.key === k)).filter((b) => b !== undefined)) {
      for (const entry of answer[bucket.key] || []) {
        const email = typeof entry === "string" ? entry : entry.email;
        const detail = typeof entry === "string" ? "" : failureText(entry);
        rows.push({ email, bucket, detail, entry });
      }
    }
    const counts = Object.fromEntries(BUCKETS.map((b) => [b.key, (answer[b.key] || []).length]));
    const summary = BUCKETS.map((b) => `${count(counts[b.key])} ${b.label.toLowerCase()}`).join(", ");
    const csv = () => toCsv(["email", "result", "detail"], rows.map((r) => [r.email, r.bucket.key, r.detail]));
    const without = (answer.withoutAccess || []).slice();
    const table = h("div");
    const filter = h("select", { id: "access-filter" },
      h("option", { value: "", text: `All (${count(rows.length)})` }),
      BUCKETS.map((b) => h("option", { value: b.key, text: `${b.label} (${count(counts[b.key])})` })));
    const showRows = () => {
      const chosen = filter.value;
      clear(table, pagedTable({
        caption: "Access check results",
        rows: chosen ? rows.filter((r) => r.bucket.key === chosen) : rows,
        empty: "No emails in this group.",
        search: (r) => `${r.email} ${r.bucket.label} ${r.detail}`,
        columns: [
          { label: "Email", cell: (r) => fit(r.email, "email"), sort: (r) => r.email },
          { label: "Result", cell: (r) => lozenge(r.bucket.label, r.bucket.tone), sort: (r) => r.bucket.label },
          { label: "Detail", cell: (r) => r.detail, text: (r) => r.detail },
        ],
      }));
    };
    filter.addEventListener("change", showRows);
    showRows();
    clear(
      results,
      summaryCards(BUCKETS.map((b) => ({ key: b.key, label: b.label, tone: b.tone, value: counts[b.key] }))),
      causeMessages(answer.failed || [], {
        noun: "email",
        done: "checked",
        refused: "Run Diagnose to see which permission or scope Confluence is missing.",
      }),
      h("div", { class: "block-head" },
        h("div", { class: "inline-field" }, h("label", { for: "access-filter", text: "Show" }), filter),
        h("div", { class: "actions" },
          without.length && inviteThese
            ? button(`Invite the ${plural(without.length, "person", "people")} with no access…`, () => inviteThese(without), { kind: "primary" })
            : null,
          button("Copy", () => copyText(csv(), `Copied ${plural(rows.length, "row")}`), { "aria-label": "Copy access results as CSV" }),
          button("Download CSV", () => download("access-check.csv", csv()), { "aria-label": "Download CSV of access results" }))),
      table,
    );
    announce(`Checked ${plural(rows.length, "email")}: ${summary}.`);
  }

  return {
    // Emails handed over by another tool (Look up's "Check access for N emails…"): in the form,
    // ready to check; the results of an earlier list go.
    prefill(emails) {
      form.setValue(emails.join("\n"));
      clear(results);
      form.submit.focus();
      announce(`${plural(emails.length, "email")} from Look up ${emails.length === 1 ? "is" : "are"} ready to check.`);
    },
    show() {},
  };
}
