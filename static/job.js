// Invite jobs (CONTRACT.md §4 Job): polling, counts, progress and per-row outcomes.
import { call, failureText } from "./api.js";
import { count, formatDate, h, lozenge, pagedTable, toCsv } from "./dom.js";

export const OUTCOMES = {
  pending: { label: "Pending", tone: "default" },
  invited: { label: "Invited", tone: "success" },
  alreadyHasAccess: { label: "Already has access", tone: "info" },
  invalid: { label: "Invalid email", tone: "removed" },
  failed: { label: "Failed", tone: "moved" },
};

export const STATES = {
  queued: { label: "Queued", tone: "default" },
  running: { label: "Running", tone: "info" },
  done: { label: "Done", tone: "success" },
  failed: { label: "Failed", tone: "removed" },
};

export function finished(job) {
  return job.state === "done" || job.state === "failed";
}

export function stateLozenge(job) {
  const s = STATES[job.state] || { label: job.state || "unknown", tone: "default" };
  return lozenge(s.label, s.tone);
}

export function outcomeLabel(item, dryRun) {
  if (item.outcome === "pending" && dryRun) {
    return "Would be invited";
  }
  return (OUTCOMES[item.outcome] || { label: item.outcome }).label;
}

export function outcomeDetail(item) {
  if (!item.error) {
    return "";
  }
  return failureText(typeof item.error === "object" ? item.error : { error: item.error, retryAfter: item.retryAfter });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls getJob about every `interval` ms until the job is done or failed, or `isCancelled()`.
// onUpdate(job) runs after every answer. Errors propagate (the caller offers to resume).
export async function pollJob(jobId, onUpdate, { interval = 1000, isCancelled = () => false } = {}) {
  for (;;) {
    const { job } = await call("getJob", { jobId });
    if (isCancelled()) {
      return job;
    }
    onUpdate(job);
    if (finished(job)) {
      return job;
    }
    await sleep(interval);
    if (isCancelled()) {
      return job;
    }
  }
}

export function processed(job) {
  const c = job.counts || {};
  return Math.max(0, (job.total || 0) - (c.pending || 0));
}

// A progress bar with an accessible name; update(job) moves it. A dry run keeps its would-be invites
// pending, so "processed" says nothing until it is done: while it runs the bar is indeterminate
// (no aria-valuenow; the text and aria-valuetext say it is checking), and full once it is done.
export function progressBar(label) {
  const fill = h("div", { class: "progress-fill" });
  const text = h("p", { class: "progress-text" });
  const bar = h(
    "div",
    { class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuetext": "Starting…" },
    fill,
  );
  const el = h("div", { class: "progress-block" }, bar, text);

  function indeterminate(words) {
    bar.removeAttribute("aria-valuenow");
    bar.removeAttribute("aria-valuemax");
    bar.setAttribute("aria-valuetext", words);
    bar.dataset.state = "indeterminate"; // styles.css animates it (still under reduced motion)
    fill.style.width = "";
    text.textContent = words;
  }

  function determinate() {
    delete bar.dataset.state;
  }

  // Before there is a job to show (the request that starts it is in flight).
  el.pending = (words) => indeterminate(words);
  el.update = (job, describe) => {
    const total = job.total || 0;
    if (job.dryRun && !finished(job)) {
      indeterminate(`Checking ${count(total)} ${total === 1 ? "email" : "emails"}…`);
      return;
    }
    determinate();
    const done = finished(job) ? total : processed(job);
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuetext", `${count(done)} of ${count(total)} processed`);
    fill.style.width = total ? `${Math.round((done / total) * 100)}%` : finished(job) ? "100%" : "0%";
    text.textContent = describe ? describe(job, done, total) : `${count(done)} of ${count(total)} processed`;
  };
  return el;
}

export function countCards(job) {
  const c = job.counts || {};
  const keys = job.dryRun ? ["pending", "alreadyHasAccess", "invalid", "failed"] : ["invited", "alreadyHasAccess", "invalid", "failed", "pending"];
  return h("ul", { class: "stat-cards", "aria-label": "Counts" },
    keys.map((k) => h("li", { class: `stat stat-${OUTCOMES[k].tone}` },
      h("span", { class: "stat-value", text: count(c[k] || 0) }),
      h("span", { class: "stat-label", text: k === "pending" && job.dryRun ? "Would be invited" : OUTCOMES[k].label }))));
}

export function itemsTable(job, caption = "Job items") {
  return pagedTable({
    caption,
    rows: job.items || [],
    empty: "This job has no items.",
    columns: [
      { label: "Email", cell: (it) => it.email },
      { label: "Outcome", cell: (it) => lozenge(outcomeLabel(it, job.dryRun), (OUTCOMES[it.outcome] || OUTCOMES.pending).tone) },
      { label: "Detail", cell: (it) => outcomeDetail(it) },
    ],
  });
}

export function itemsCsv(job) {
  return toCsv(["email", "outcome", "error"], (job.items || []).map((it) => [it.email, it.outcome, outcomeDetail(it)]));
}

export function jobTitle(job) {
  const mode = job.dryRun ? "Dry run" : "Invite";
  const source = job.source === "webhook" ? "webhook" : "panel";
  return `${mode} from the ${source}, ${formatDate(job.createdAt)}`;
}
