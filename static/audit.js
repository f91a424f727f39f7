// The audit log as sentences ("Bruno Rossi invited 240 people: 236 invited, 4 invalid"), newest
// first, with the job as a link, filters (what, who, email, dates) sent to listAudit, a CSV of the
// whole filtered range and the retention period.
import { call } from "./api.js";
import { download, toCsv } from "./csv.js";
import { button, clear, count, emptyState, formatDate, h, lozenge, nextId, plural } from "./dom.js";
import { flag } from "./flags.js";
import { pagedTable } from "./table.js";
import { cursorPages } from "./pages.js";
import { knownName, nameOf, person } from "./people.js";

const AUDIT_PAGE = 100;
const CSV_LIMIT = 10000; // entries in one CSV: the filtered range, at most this many
const RETENTION_DAYS = 90; // PERSONAL_DATA_RETENTION_DAYS's default (README, Configuration)

export const ACTIONS = [
  { key: "checkAccess", label: "Access checks" },
  { key: "invite", label: "Invitations" },
  { key: "invite.dryRun", label: "Previews" },
  { key: "job.cancel", label: "Cancelled jobs" },
  { key: "job.retry", label: "Retried jobs" },
  { key: "webhook.delivery", label: "Webhook deliveries" },
  { key: "webhook.rotateSecret", label: "Webhook secret changes" },
  { key: "app.installed", label: "App installed" },
  { key: "app.upgraded", label: "App upgraded" },
];

const n = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function tally(o, { dry = false } = {}) {
  const parts = [];
  if (dry) {
    parts.push(`would invite ${count(n(o.pending))}`);
  } else if ("invited" in o) {
    parts.push(`${count(n(o.invited))} invited`);
  }
  if (n(o.withoutAccess)) parts.push(`${count(o.withoutAccess)} with no access`);
  if (n(o.withAccess)) parts.push(`${count(o.withAccess)} ${o.withAccess === 1 ? "has" : "have"} access`);
  if (n(o.alreadyHasAccess)) parts.push(`${count(o.alreadyHasAccess)} ${o.alreadyHasAccess === 1 ? "has" : "have"} access`);
  if (n(o.invalid)) parts.push(`${count(o.invalid)} invalid`);
  if (n(o.failed)) parts.push(`${count(o.failed)} failed`);
  if (!dry && n(o.pending)) parts.push(`${count(o.pending)} not done`);
  return parts.join(", ");
}

// [actor phrase parts..., rest]: what happened, as a sentence after the actor's name.
export function describeEntry(e) {
  const o = e.outcome && typeof e.outcome === "object" ? e.outcome : {};
  const subjects = Array.isArray(e.subjects) ? e.subjects : [];
  const total = n(o.pending) + n(o.invited) + n(o.alreadyHasAccess) + n(o.invalid) + n(o.failed);
  const stopped = o.state === "failed" ? "; the job stopped" : "";
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
      return `retried ${plural(n(o.emails) || subjects.length, "failed item")} of an earlier job`;
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
// the admin its job runs as).
function byWebhook(e) {
  return e.actor === "webhook" || e.action === "webhook.delivery";
}

// An install or upgrade names the account that did it (Forge's entry, the account its subject): the
// sentence starts with them, by name.
function installer(e) {
  return (e.action === "app.installed" || e.action === "app.upgraded") && Array.isArray(e.subjects) && e.subjects.length === 1 ? String(e.subjects[0]) : null;
}

// The whole sentence as text (CSV, the table's filter box): "Bruno Rossi invited 3 people: …".
export function entryText(e) {
  if (installer(e)) {
    return `${knownName(installer(e)) || installer(e)} ${describeEntry(e)} through Forge.`;
  }
  if (byWebhook(e)) {
    const as = e.actor && e.actor !== "webhook" ? `, run as ${knownName(e.actor) || e.actor}` : "";
    return `A webhook ${describeEntry(e)}${as}.`;
  }
  return `${knownName(e.actor) || e.actor} ${describeEntry(e)}.`;
}

function subjectsText(subjects) {
  if (!Array.isArray(subjects) || !subjects.length) {
    return "";
  }
  const shown = subjects.slice(0, 3).map(String);
  return subjects.length > 3 ? `${shown.join(", ")} and ${count(subjects.length - 3)} more` : shown.join(", ");
}

function csvValue(v) {
  return v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
}

export function mountAudit(panel, go = {}) {
  const list = h("div", { class: "results", "aria-busy": "false" });
  let entries = [];
  let next = null;
  let table = null;
  const older = button("Older", () => load(false), { "aria-label": "Older audit entries" });

  // Filters: what, who, an email or account id, a date range.
  const ids = { action: nextId("f"), actor: nextId("f"), subject: nextId("f"), since: nextId("f"), until: nextId("f") };
  const action = h("select", { id: ids.action }, h("option", { value: "", text: "Everything" }), ACTIONS.map((a) => h("option", { value: a.key, text: a.label })));
  const actor = h("select", { id: ids.actor }, h("option", { value: "", text: "Anyone" }));
  const subject = h("input", { id: ids.subject, type: "search", placeholder: "name@example.com", autocomplete: "off", spellcheck: "false" });
  const since = h("input", { id: ids.since, type: "date" });
  const until = h("input", { id: ids.until, type: "date" });
  const field = (id, label, control) => h("div", { class: "field" }, h("label", { for: id, text: label }), control);
  const apply = button("Apply filters", () => load(true));
  const reset = button("Clear filters", () => {
    action.value = "";
    actor.value = "";
    subject.value = "";
    since.value = "";
    until.value = "";
    load(true);
  });
  const filterBar = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log", onsubmit: (ev) => { ev.preventDefault(); load(true); } },
    field(ids.action, "What", action),
    field(ids.actor, "Who", actor),
    field(ids.subject, "Email or account id", subject),
    field(ids.since, "From", since),
    field(ids.until, "To", until),
    h("div", { class: "actions" }, apply, reset));
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
    if (actor.value) out.actor = actor.value;
    if (subject.value.trim()) out.subject = subject.value.trim();
    if (since.value) out.since = new Date(`${since.value}T00:00:00`).toISOString();
    if (until.value) out.until = new Date(`${until.value}T23:59:59.999`).toISOString();
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

  function noteActors(rows) {
    const seen = new Set([...actor.options].map((o) => o.value));
    for (const e of rows) {
      if (e.actor && !seen.has(e.actor) && e.actor !== "webhook" && e.actor !== "forge") {
        seen.add(e.actor);
        const option = h("option", { value: e.actor, text: knownName(e.actor) || e.actor });
        actor.append(option);
        nameOf(e.actor).then((name) => {
          if (name) {
            option.textContent = name;
          }
        });
      }
    }
  }

  function sentence(e) {
    const o = e.outcome && typeof e.outcome === "object" ? e.outcome : {};
    const jobId = typeof o.jobId === "string" ? o.jobId : null;
    const webhook = byWebhook(e);
    const by = installer(e);
    const actorEl = by ? person(by, { plain: true }) : webhook ? h("span", { class: "person-name", text: "A webhook" }) : person(e.actor, { plain: true });
    const as = webhook && e.actor && e.actor !== "webhook" ? [", run as ", person(e.actor, { plain: true })] : null;
    return h("span", { class: "sentence" },
      actorEl, ` ${describeEntry(e)}`, as, by ? " through Forge" : null, ".",
      jobId && go.openJob ? [" ", h("button", { type: "button", class: "link-btn", text: "View job", "aria-label": `View job: ${describeEntry(e)}`, onclick: () => go.openJob(jobId) })] : null,
      subjectsText(e.subjects) && !by ? h("span", { class: "cell-sub", text: subjectsText(e.subjects) }) : null);
  }

  function render() {
    exportBtn.disabled = entries.length === 0;
    noteActors(entries);
    if (!table) {
      table = pagedTable({
        caption: "Audit log",
        rows: entries,
        empty: active()
          ? emptyState("No entries match these filters", "Try a wider date range or another person.", button("Clear filters", () => reset.click()))
          : emptyState("Nothing recorded yet", "Access checks, invitations and webhook changes made in Access Desk are recorded here.",
            go.showTab ? button("Check access", () => go.showTab("access"), { kind: "primary" }) : null),
        search: (e) => `${entryText(e)} ${subjectsText(e.subjects)}`,
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
      let rows = [];
      let cursor = null;
      do {
        const answer = await call("listAudit", { limit: 500, ...filters(), ...(cursor ? { before: cursor } : {}) });
        rows = rows.concat(answer.entries || []);
        cursor = answer.next || null;
      } while (cursor && rows.length < CSV_LIMIT);
      await Promise.all([...new Set(rows.map((e) => e.actor))].map((a) => nameOf(a)));
      const csv = toCsv(["at", "actor", "action", "source", "subjects", "outcome", "description"],
        rows.slice(0, CSV_LIMIT).map((e) => [e.at, e.actor, e.action, e.source, csvValue(e.subjects), csvValue(e.outcome),
          entryText(e)]));
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
