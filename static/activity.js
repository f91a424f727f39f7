// Jobs (panel and webhook) and the audit log, newest first, with "Older" paging.
import { call } from "./api.js";
import { announce, busy, button, clear, copyText, count, download, formatDate, h, message, pagedTable, plural, spinner, toCsv } from "./dom.js";
import { countCards, finished, itemsCsv, itemsTable, jobTitle, pollJob, progressBar, stateLozenge } from "./job.js";

const JOBS_PAGE = 50;
const AUDIT_PAGE = 100;

// A newest-first list loaded a page at a time: load(true) starts over, load(false) ("Older")
// follows the cursor `next`. Returns load; onPage receives every row so far and the cursor.
function cursorPages({ list, older, resolver, key, pageSize, loading, listed, onReset, onPage }) {
  let rows = [];
  let next = null;
  return async function load(reset) {
    if (reset) {
      rows = [];
      next = null;
      onReset();
      clear(list, spinner(loading));
    }
    older.disabled = true;
    await busy(list, async () => {
      try {
        const payload = { limit: pageSize };
        if (!reset && next) {
          payload.before = next;
        }
        const answer = await call(resolver, payload);
        rows = rows.concat(answer[key] || []);
        next = answer.next || null;
        onPage(rows, next);
        announce(listed(rows.length));
      } catch (err) {
        clear(list, message("error", err.message));
        announce(err.message);
      } finally {
        older.disabled = false;
      }
    });
  };
}

export function mountJobs(panel) {
  const list = h("div", { class: "results", "aria-busy": "false" });
  const detail = h("section", { class: "job-detail", "aria-live": "off", tabindex: "-1", "aria-label": "Job details" });
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

  const load = cursorPages({
    list, older, resolver: "listJobs", key: "jobs", pageSize: JOBS_PAGE, loading: "Loading jobs…",
    listed: (n) => `${plural(n, "job")} listed.`,
    onReset: () => { table = null; },
    onPage: (rows, cursor) => { jobs = rows; next = cursor; render(); },
  });

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
          { label: "Details", cell: (j) => button("Open", () => open(j.id), { "aria-label": `Open job: ${jobTitle(j)}` }) },
        ],
      });
      clear(list, table, h("div", { class: "actions" }, older));
    } else {
      table.update(jobs);
    }
    older.hidden = !next;
  }

  async function open(jobId) {
    const mine = ++opened;
    clear(detail, spinner("Loading the job…"));
    await busy(detail, async () => {
      try {
        const { job } = await call("getJob", { jobId });
        if (mine !== opened) {
          return;
        }
        const bar = progressBar("Job progress");
        const cards = h("div", {}, countCards(job));
        const items = itemsTable(job, "Job items");
        const note = h("div");
        clear(detail,
          h("div", { class: "block-head" },
            h("h3", { text: jobTitle(job) }),
            h("div", { class: "actions" },
              button("Copy", () => copyText(itemsCsv(job), "Copied the job's items"), { "aria-label": "Copy job items as CSV" }),
              button("Download CSV", () => download(`job-${job.id}.csv`, itemsCsv(job)), { "aria-label": "Download CSV of job items" }),
              button("Close", () => { opened += 1; clear(detail); }, { "aria-label": "Close job details" }))),
          h("p", { class: "field-hint" }, "State ", stateLozenge(job), ` · created by ${job.createdBy || "unknown"} · updated ${formatDate(job.updatedAt)}`),
          bar, cards, note, items);
        bar.update(job);
        detail.focus();
        announce(`Opened ${jobTitle(job)}.`);
        if (!finished(job)) {
          await pollJob(job.id, (j) => {
            bar.update(j);
            clear(cards, countCards(j));
            items.update(j.items || []);
          }, { isCancelled: () => mine !== opened });
        }
      } catch (err) {
        if (mine === opened) {
          clear(detail, message("error", err.message));
          announce(err.message);
        }
      }
    });
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

  const load = cursorPages({
    list, older, resolver: "listAudit", key: "entries", pageSize: AUDIT_PAGE, loading: "Loading the audit log…",
    listed: (n) => `${plural(n, "audit entry", "audit entries")} listed.`,
    onReset: () => { table = null; },
    onPage: (rows, cursor) => { entries = rows; next = cursor; render(); },
  });

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
      clear(list, table, h("div", { class: "actions" }, older));
    } else {
      table.update(entries);
    }
    older.hidden = !next;
  }

  return { show: () => load(true) };
}

