// @ts-check
// The audit log as sentences ("Bruno Rossi invited 240 people: 236 invited, 4 invalid"), newest
// first, with the job as a link and the people it is about (the email searched for first, marked),
// filters (what, who: a person, the webhook or Forge, an email, when: presets or a custom range)
// sent to listAudit, a CSV of the whole filtered range (names, one address per row) and the
// retention period. A webhook delivery is one entry, the webhook's, "run as" its admin.
import { call } from "./api.js";
import { asciiLower, download, toCsv } from "./csv.js";
import { button, clear, count, emptyState, formatDate, h, lozenge, nextId, plural } from "./dom.js";
import { flag } from "./flags.js";
import { pagedTable } from "./table.js";
import { cursorPages } from "./pages.js";
import { knownName, nameOf, person } from "./people.js";

/**
 * An audit entry as listAudit answers it (docs/contract.md).
 * @typedef {object} AuditEntry
 * @property {string} [at]
 * @property {string | null} [actor]
 * @property {string} [action]
 * @property {string} [source]
 * @property {unknown[]} [subjects]
 * @property {Record<string, unknown> | string | null} [outcome]
 */

const AUDIT_PAGE = 100;
const CSV_LIMIT = 10000; // entries in one CSV: the filtered range, at most this many
const RETENTION_DAYS = 90; // PERSONAL_DATA_RETENTION_DAYS's default (README, Configuration)

export const ACTIONS = [
  { key: "checkAccess", label: "Access checks" },
  { key: "invite", label: "Invitations" },
  { key: "invite.dryRun", label: "Previews" },
  { key: "job.cancel", label: "Cancelled jobs" },
  { key: "job.retry", label: "Retried jobs" },
  { key: "webhook.rotateSecret", label: "Webhook secret changes" },
  { key: "webhook.test", label: "Webhook tests" },
  { key: "app.installed", label: "App installed" },
  { key: "app.upgraded", label: "App upgraded" },
];

/** @param {unknown} v */
const n = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/**
 * @param {Record<string, unknown>} o
 * @param {{dry?: boolean}} [options]
 */
function tally(o, { dry = false } = {}) {
  const parts = [];
  if (dry) {
    parts.push(`would invite ${count(n(o.pending))}`);
  } else if ("invited" in o) {
    parts.push(`${count(n(o.invited))} invited`);
  }
  if (n(o.withoutAccess)) parts.push(`${count(n(o.withoutAccess))} with no access`);
  if (n(o.withAccess)) parts.push(`${count(n(o.withAccess))} ${o.withAccess === 1 ? "has" : "have"} access`);
  if (n(o.alreadyHasAccess)) parts.push(`${count(n(o.alreadyHasAccess))} ${o.alreadyHasAccess === 1 ? "has" : "have"} access`);
  if (n(o.invalid)) parts.push(`${count(n(o.invalid))} invalid`);
  if (n(o.failed)) parts.push(`${count(n(o.failed))} failed`);
  if (n(o.cancelled)) parts.push(`${count(n(o.cancelled))} ${dry ? "not checked" : "not sent"} (cancelled)`);
  if (!dry && n(o.pending)) parts.push(`${count(n(o.pending))} not done`);
  return parts.join(", ");
}

// How many people an entry is about (its subjects show at most the first 100).
/** @param {AuditEntry} e */
export function entryTotal(e) {
  const o = e.outcome && typeof e.outcome === "object" ? e.outcome : {};
  const subjects = Array.isArray(e.subjects) ? e.subjects.length : 0;
  if (e.action === "invite" || e.action === "invite.dryRun") {
    const total = n(o.pending) + n(o.invited) + n(o.alreadyHasAccess) + n(o.invalid) + n(o.failed) + n(o.cancelled);
    return Math.max(total, subjects);
  }
  return Math.max(n(o.emails), subjects);
}

// A webhook job's entry in two parts, so that "run as" goes between them: "asked to invite 3
// people" and ": 2 invited, 1 has access".
/** @param {AuditEntry} e */
function webhookParts(e) {
  const o = e.outcome && typeof e.outcome === "object" ? e.outcome : {};
  const total = entryTotal(e);
  const stopped = o.state === "failed" && o.error !== "cancelled" && !n(o.cancelled) ? "; the job stopped" : "";
  return e.action === "invite"
    ? [`asked to invite ${plural(total, "person", "people")}`, `${tally(o) ? `: ${tally(o)}` : ""}${stopped}`]
    : [`asked for a preview of ${plural(total, "email")}`, `: ${tally(o, { dry: true })}${stopped}`];
}

// What happened, as a sentence after the actor's name.
/** @param {AuditEntry} e */
export function describeEntry(e) {
  const o = e.outcome && typeof e.outcome === "object" ? e.outcome : {};
  const subjects = Array.isArray(e.subjects) ? e.subjects : [];
  const total = entryTotal(e);
  const stopped = o.state === "failed" && o.error !== "cancelled" && !n(o.cancelled) ? "; the job stopped" : "";
  if (e.source === "webhook" && (e.action === "invite" || e.action === "invite.dryRun")) {
    const [head, tail] = webhookParts(e);
    return `${head}${tail}`;
  }
  switch (e.action) {
    case "checkAccess": {
      const emails = n(o.emails) || subjects.length;
      const t = tally(o);
      return `checked access for ${plural(emails, "email")}${t ? `: ${t}` : ""}`;
    }
    case "invite":
      return `invited ${plural(total, "person", "people")}${tally(o) ? `: ${tally(o)}` : ""}${stopped}`;
    case "invite.dryRun":
      return `previewed invitations for ${plural(total, "email")}: ${tally(o, { dry: true })}${stopped}`;
    case "job.cancel":
      return "cancelled a job";
    case "job.retry":
      return `retried ${plural(n(o.emails) || subjects.length, "invitation")} not sent by an earlier job${n(o.inOtherJobs) ? ` (${count(n(o.inOtherJobs))} already in a running job left out)` : ""}`;
    case "webhook.test":
      return o.status === 202 ? "sent a test delivery to the webhook; it was accepted" : `sent a test delivery to the webhook; it was refused (${o.status})`;
    case "webhook.delivery":
      return `asked to invite ${plural(n(o.emails) || subjects.length, "person", "people")}`;
    case "webhook.rotateSecret":
      return e.outcome === "revoked" || o.revokedPrevious || o.revokePrevious
        ? "created a new webhook secret and revoked the previous one"
        : "created a new webhook secret";
    case "app.installed":
      return "installed Access Desk";
    case "app.upgraded":
      return "upgraded Access Desk";
    default: {
      const what = String(e.action || "did something").replace(/^app\./, "app ");
      return typeof e.outcome === "string" ? `${what} (${e.outcome})` : what;
    }
  }
}

// Who did it, as the sentence starts: a webhook delivery is the webhook's doing (its entry's actor is
// the admin its job runs as), and so is the end of a webhook's job.
/** @param {AuditEntry} e */
function byWebhook(e) {
  return e.actor === "webhook" || e.action === "webhook.delivery" || (e.source === "webhook" && e.action !== "webhook.rotateSecret");
}

// An install or upgrade names the account that did it (Forge's entry, the account its subject): the
// sentence starts with them, by name.
/** @param {AuditEntry} e */
function installer(e) {
  return (e.action === "app.installed" || e.action === "app.upgraded") && Array.isArray(e.subjects) && e.subjects.length === 1 ? String(e.subjects[0]) : null;
}

// The whole sentence as text (CSV, the table's filter box): "Bruno Rossi invited 3 people: …".
/** @param {AuditEntry} e */
export function entryText(e) {
  if (installer(e)) {
    return `${knownName(installer(e)) || installer(e)} ${describeEntry(e)} through Forge.`;
  }
  if (byWebhook(e)) {
    const as = e.actor && e.actor !== "webhook" ? `, run as ${knownName(e.actor) || e.actor}` : "";
    const [head, tail] = e.source === "webhook" && (e.action === "invite" || e.action === "invite.dryRun")
      ? webhookParts(e) : [describeEntry(e), ""];
    return `A webhook ${head}${as}${tail}.`;
  }
  return `${knownName(e.actor) || e.actor} ${describeEntry(e)}.`;
}

// The people an entry is about, in a few words: "a, b, c and 118 more" (the count from the entry's
// total, not from the at most 100 subjects it shows). With a search, the match comes first.
/**
 * @param {AuditEntry} e
 * @param {string} [match]
 * @returns {{shown: string[], matched: string | null, more: number, rest?: string[]}}
 */
export function subjectsParts(e, match = "") {
  const subjects = Array.isArray(e.subjects) ? e.subjects.map(String) : [];
  const total = Math.max(subjects.length, entryTotal(e));
  if (!total) {
    return { shown: [], matched: null, more: 0 };
  }
  const key = asciiLower(match.trim());
  let matched = null;
  if (key) {
    // Its spelling in the entry, or (past the 100 an entry shows) as the search matched it.
    matched = subjects.find((s) => asciiLower(s) === key) || key;
    const rest = subjects.filter((s) => asciiLower(s) !== key);
    return { shown: [], matched, more: Math.max(0, total - 1), rest };
  }
  const shown = subjects.slice(0, 3);
  return { shown, matched, more: Math.max(0, total - shown.length) };
}

/**
 * @param {AuditEntry} e
 * @param {string} [match]
 */
function subjectsText(e, match = "") {
  const { shown, matched, more } = subjectsParts(e, match);
  const names = matched ? [matched] : shown;
  if (!names.length) {
    return "";
  }
  return more ? `${names.join(", ")} and ${count(more)} more` : names.join(", ");
}

// "2026-12-08 14:05:09" in UTC: a CSV's times sort and read the same for everyone.
/** @param {string | undefined} value */
export function utcText(value) {
  const date = new Date(value ?? NaN); // no time: an invalid date, as new Date(undefined) is
  return Number.isNaN(date.getTime()) ? String(value || "") : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

const WHEN = [
  { key: "", label: "Any time" },
  { key: "24h", label: "Last 24 hours", hours: 24 },
  { key: "7d", label: "Last 7 days", hours: 24 * 7 },
  { key: "30d", label: "Last 30 days", hours: 24 * 30 },
  { key: "custom", label: "Custom range…" },
];
// Actors that are not people, selectable in "Who" (the webhook by its entries' source).
const NOT_PEOPLE = [
  { value: "source:webhook", label: "The webhook" },
  { value: "actor:forge", label: "Forge (install and upgrade)" },
];

/**
 * @param {HTMLElement} panel
 * @param {import("./app.js").Go} [go]
 * @returns {import("./app.js").View}
 */
export function mountAudit(panel, go = {}) {
  const list = h("div", { class: "results", "aria-busy": "false" });
  /** @type {AuditEntry[]} */
  let entries = [];
  /** @type {string | null} */
  let next = null;
  /** @type {import("./table.js").PagedTable<AuditEntry> | null} */
  let table = null;
  const older = button("Older", () => load(false), { "aria-label": "Older audit entries" });

  // Filters: what, who (a person, the webhook or Forge), an email or account id, and when (the last
  // day, week or month, or a custom range of dates).
  const ids = { action: nextId("f"), actor: nextId("f"), subject: nextId("f"), when: nextId("f"), since: nextId("f"), until: nextId("f") };
  const action = h("select", { id: ids.action }, h("option", { value: "", text: "Everything" }), ACTIONS.map((a) => h("option", { value: a.key, text: a.label })));
  const actor = h("select", { id: ids.actor }, h("option", { value: "", text: "Anyone" }),
    NOT_PEOPLE.map((a) => h("option", { value: a.value, text: a.label })));
  const subject = h("input", { id: ids.subject, type: "search", placeholder: "name@example.com", autocomplete: "off", spellcheck: "false" });
  const when = h("select", { id: ids.when }, WHEN.map((w) => h("option", { value: w.key, text: w.label })));
  const since = h("input", { id: ids.since, type: "date" });
  const until = h("input", { id: ids.until, type: "date" });
  /**
   * @param {string} id
   * @param {string} label
   * @param {HTMLElement} control
   * @param {import("./dom.js").Attrs} [attrs]
   */
  const field = (id, label, control, attrs = {}) => h("div", { class: "field", ...attrs }, h("label", { for: id, text: label }), control);
  const sinceField = field(ids.since, "From", since, { hidden: true });
  const untilField = field(ids.until, "To", until, { hidden: true });
  const apply = button("Apply filters", () => load(true));
  const reset = button("Clear filters", () => {
    action.value = "";
    actor.value = "";
    subject.value = "";
    when.value = "";
    since.value = "";
    until.value = "";
    showRange();
    load(true);
  });
  const filterBar = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log", onsubmit: (/** @type {SubmitEvent} */ ev) => { ev.preventDefault(); load(true); } },
    field(ids.action, "What", action),
    field(ids.actor, "Who", actor),
    field(ids.subject, "Email or account id", subject),
    field(ids.when, "When", when),
    sinceField,
    untilField,
    h("div", { class: "actions" }, apply, reset));
  function showRange() {
    const custom = when.value === "custom";
    sinceField.hidden = !custom;
    untilField.hidden = !custom;
  }
  when.addEventListener("change", () => {
    showRange();
    if (when.value === "custom") {
      since.focus();
    } else {
      load(true);
    }
  });
  for (const control of [action, actor, since, until]) {
    control.addEventListener("change", () => load(true));
  }

  const exportBtn = button("Download CSV", () => exportCsv(), { "aria-label": "Download CSV of the audit entries shown by the filters" });
  clear(panel,
    h("div", { class: "block-head" }, h("h2", { text: "Audit log" }),
      h("div", { class: "actions" }, button("Refresh", () => load(true)), exportBtn)),
    h("p", { class: "field-hint", text: `Every access check, invitation, webhook delivery, secret change and app event, newest first. After ${RETENTION_DAYS} days (unless whoever runs Access Desk set another period), the emails and account ids in an entry are removed; the entry itself stays.` }),
    filterBar,
    list);

  function filters() {
    const out = {};
    if (action.value) out.action = action.value;
    if (actor.value.startsWith("source:")) out.source = actor.value.slice(7);
    else if (actor.value.startsWith("actor:")) out.actor = actor.value.slice(6);
    if (subject.value.trim()) out.subject = subject.value.trim();
    const preset = WHEN.find((w) => w.key === when.value);
    if (preset && preset.hours) {
      out.since = new Date(Date.now() - preset.hours * 3600 * 1000).toISOString();
    } else if (when.value === "custom") {
      if (since.value) out.since = new Date(`${since.value}T00:00:00`).toISOString();
      if (until.value) out.until = new Date(`${until.value}T23:59:59.999`).toISOString();
    }
    return out;
  }

  const active = () => Object.keys(filters()).length > 0;

  const pages = cursorPages({
    list, older, resolver: "listAudit", key: "entries", pageSize: AUDIT_PAGE, loading: "Loading the audit log…",
    olderWords: "older audit entries",
    listed: (k) => `${plural(k, "audit entry", "audit entries")} listed.`,
    onReset: () => { table = null; },
    onPage: (rows, cursor) => { entries = rows; next = cursor; render(); },
    filters,
  });
  const load = pages.load;

  /** @param {AuditEntry[]} rows */
  function noteActors(rows) {
    const seen = new Set([...actor.options].map((o) => o.value));
    for (const e of rows) {
      const value = `actor:${e.actor}`;
      if (e.actor && !seen.has(value) && !["webhook", "forge", "privacy", "erased", "panel"].includes(e.actor)) {
        seen.add(value);
        const option = h("option", { value, text: knownName(e.actor) || e.actor });
        actor.append(option);
        nameOf(e.actor).then((name) => {
          if (name) {
            option.textContent = name;
          }
        });
      }
    }
  }

  /** @param {AuditEntry} e */
  function sentence(e) {
    const o = e.outcome && typeof e.outcome === "object" ? e.outcome : {};
    const jobId = typeof o.jobId === "string" ? o.jobId : null;
    const webhook = byWebhook(e);
    const by = installer(e);
    const actorEl = by ? person(by, { plain: true }) : webhook ? h("span", { class: "person-name", text: "A webhook" }) : person(e.actor, { plain: true });
    const as = webhook && e.actor && e.actor !== "webhook" ? [", run as ", person(e.actor, { plain: true })] : null;
    return h("span", { class: "sentence" },
      actorEl, ...(webhook && e.source === "webhook" && (e.action === "invite" || e.action === "invite.dryRun")
        ? (([head, tail]) => [` ${head}`, as, tail])(webhookParts(e))
        : [` ${describeEntry(e)}`, as]), by ? " through Forge" : null, ".",
      jobId && go.openJob ? [" ", h("button", { type: "button", class: "link-btn", text: "View job", "aria-label": `View job: ${describeEntry(e)}`, onclick: () => go.openJob?.(jobId) })] : null,
      by ? null : about(e));
  }

  // The people the entry is about; the email searched for first and marked.
  /** @param {AuditEntry} e */
  function about(e) {
    const { shown, matched, more } = subjectsParts(e, searched);
    if (!shown.length && !matched) {
      return null;
    }
    const names = matched ? [h("mark", { class: "match", text: matched })] : [shown.join(", ")];
    return h("span", { class: "cell-sub" }, names, more ? ` and ${count(more)} more` : "");
  }

  let searched = ""; // the email or account id the shown rows were filtered by

  function render() {
    searched = filters().subject || "";
    exportBtn.disabled = entries.length === 0;
    noteActors(entries);
    if (!table) {
      table = pagedTable({
        caption: "Audit log",
        rows: entries,
        empty: active()
          ? emptyState("No entries match these filters", "Try a wider date range or another person.", button("Clear filters", () => reset.click()))
          : emptyState("Nothing recorded yet", "Access checks, invitations and webhook changes made in Access Desk are recorded here.",
            go.showTab ? button("Check access", () => go.showTab?.("access"), { kind: "primary" }) : null),
        search: (e) => `${entryText(e)} ${subjectsText(e, searched)}`,
        columns: [
          { label: "When", className: "nowrap", cell: (e) => formatDate(e.at), sort: (e) => e.at || "" },
          { label: "What happened", cell: (e) => sentence(e) },
          { label: "Source", cell: (e) => lozenge(e.source === "webhook" ? "Webhook" : e.source === "forge" ? "Forge" : "Panel", "default"), sort: (e) => e.source || "" },
        ],
      });
      clear(list, table, pages.note, h("div", { class: "actions" }, older));
    } else {
      table.update(entries);
    }
    older.hidden = !next;
  }

  // Every entry the filters select (not only the pages loaded), up to CSV_LIMIT, as CSV.
  async function exportCsv() {
    exportBtn.disabled = true;
    try {
      /** @type {AuditEntry[]} */
      let rows = [];
      /** @type {string | null} */
      let cursor = null;
      do {
        const answer = await call("listAudit", { limit: 500, ...filters(), ...(cursor ? { before: cursor } : {}) });
        rows = rows.concat(answer.entries || []);
        cursor = answer.next || null;
      } while (cursor && rows.length < CSV_LIMIT);
      rows = rows.slice(0, CSV_LIMIT);
      // Names where they are known: the actors, and the account ids among the subjects.
      const ids = new Set(rows.map((e) => e.actor));
      for (const e of rows) {
        for (const s of e.subjects || []) {
          if (!String(s).includes("@")) ids.add(String(s));
        }
      }
      await Promise.all([...ids].map((a) => nameOf(a)));
      /** @param {unknown} id */
      const named = (id) => {
        const name = knownName(id);
        return name && name !== id ? `${name} (${id})` : String(id);
      };
      // One row per address (or account) an entry is about; an entry about nobody is one row.
      const lines = [];
      for (const e of rows) {
        const o = e.outcome && typeof e.outcome === "object" ? e.outcome : {};
        const who = byWebhook(e) ? "Webhook" : knownName(e.actor) || e.actor;
        const runAs = byWebhook(e) && e.actor !== "webhook" ? knownName(e.actor) || e.actor : "";
        const base = [utcText(e.at), who, runAs, e.actor, e.action, entryText(e), typeof o.jobId === "string" ? o.jobId : ""];
        const subjects = Array.isArray(e.subjects) && e.subjects.length ? e.subjects : [""];
        for (const s of subjects) {
          lines.push([...base, s && !String(s).includes("@") ? named(s) : String(s)]);
        }
      }
      const csv = toCsv(["When (UTC)", "Who", "Run as", "Actor account id", "Action", "What happened", "Job", "Email or account"], lines);
      download(active() ? "audit-filtered.csv" : "audit.csv", csv);
    } catch (err) {
      flag("error", "The audit log could not be downloaded", err.message);
    } finally {
      exportBtn.disabled = entries.length === 0;
    }
  }

  return {
    show: () => load(true),
  };
}
