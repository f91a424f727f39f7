// @ts-check
// Invite jobs (the Job of the README's resolver table): polling, counts, progress, pace and per-row outcomes.
import { call, failureText } from "./api.js";
import { toCsv } from "./csv.js";
import { count, formatDate, h, lozenge, summaryCards } from "./dom.js";
import { whenWords } from "./quota.js";
import { fit, pagedTable } from "./table.js";

/**
 * A job as getJob, inviteEmails, cancelJob and retryJob answer it (docs/contract.md, `Job`); listJobs
 * leaves out its items.
 * @typedef {object} Job
 * @property {string} id
 * @property {"panel" | "webhook"} [source]
 * @property {boolean} [dryRun]
 * @property {"queued" | "running" | "done" | "failed"} state
 * @property {string} [createdAt]
 * @property {string | null} [createdBy]
 * @property {string} [updatedAt]
 * @property {number} [total]
 * @property {number} [estimatedPoints]
 * @property {string | null} [notBefore]
 * @property {string | null} [waitReason]
 * @property {{since?: string, reason?: string} | null} [paused]
 * @property {Partial<Record<Outcome, number>>} [counts]
 * @property {number} [checked]
 * @property {string | null} [retriedAs]
 * @property {{checkedAt?: string, joined?: number}} [followUp]
 * @property {JobItem[]} [items]
 */
/** @typedef {"pending" | "invited" | "alreadyHasAccess" | "invalid" | "failed" | "cancelled"} Outcome */
/**
 * One email of a job and what became of it.
 * @typedef {object} JobItem
 * @property {string} email
 * @property {Outcome} outcome
 * @property {string | {error?: string, retryAfter?: number} | null} [error]
 * @property {number} [retryAfter]
 * @property {boolean} [joined]
 */
/** @typedef {{label: string, tone: string}} Look a word and a colour (a lozenge's) */

// One word and one colour per outcome, on every tab (access.js BUCKETS uses the same).
/** @type {Record<Outcome, Look>} */
export const OUTCOMES = {
  pending: { label: "Pending", tone: "default" },
  invited: { label: "Invited", tone: "success" },
  alreadyHasAccess: { label: "Has access", tone: "info" },
  invalid: { label: "Invalid email", tone: "removed" },
  failed: { label: "Failed", tone: "moved" },
  // Not started: the job was cancelled first. Its own outcome, neither a failure nor done.
  cancelled: { label: "Cancelled", tone: "default" },
};
const WOULD_INVITE = { label: "Would be invited", tone: "discovery" };
// An invitee the follow-up found on the site (README "Follow-ups"): the end of an invitation's story.
export const JOINED = { label: "Joined", tone: "joined" };

/** @type {Record<Job["state"] | "cancelled", Look>} */
export const STATES = {
  queued: { label: "Queued", tone: "default" },
  running: { label: "In progress", tone: "info" },
  done: { label: "Done", tone: "success" },
  failed: { label: "Stopped", tone: "removed" },
  cancelled: { label: "Cancelled", tone: "default" },
};

/** @param {Job} job */
export function finished(job) {
  return job.state === "done" || job.state === "failed";
}

// A job that ended with items a cancel stopped reads "Cancelled" (grey), not a red "Stopped".
/** @param {Job} job */
export function cancelledJob(job) {
  return finished(job) && ((job.counts || {}).cancelled || 0) > 0;
}

/** @param {Job} job */
export function stateOf(job) {
  if (cancelledJob(job)) {
    return STATES.cancelled;
  }
  return STATES[job.state] || { label: job.state || "unknown", tone: "default" };
}

/** @param {Job} job */
export function stateLozenge(job) {
  const s = stateOf(job);
  return lozenge(s.label, s.tone);
}

// Items not sent: those that failed and those a cancel stopped (what a retry takes up again).
/** @param {Job} job */
export function notSent(job) {
  const c = job.counts || {};
  return (c.failed || 0) + (c.cancelled || 0);
}

/**
 * @param {JobItem} item
 * @param {boolean | undefined} dryRun
 */
export function outcomeLabel(item, dryRun) {
  return outcomeOf(item, dryRun).label;
}

/**
 * @param {JobItem} item
 * @param {boolean | undefined} dryRun
 * @returns {Look}
 */
export function outcomeOf(item, dryRun) {
  if (item.outcome === "pending" && dryRun) {
    return WOULD_INVITE;
  }
  if (item.outcome === "cancelled" || (item.outcome === "failed" && item.error === "cancelled")) {
    return OUTCOMES.cancelled;
  }
  if (item.outcome === "invited" && item.joined === true) {
    return JOINED;
  }
  return OUTCOMES[item.outcome] || { label: String(item.outcome), tone: "default" };
}

/** @param {JobItem} item */
export function outcomeDetail(item) {
  if (item.outcome === "invited" && item.joined === true) {
    return "Invited, has since joined the site";
  }
  if (item.outcome === "invited" && item.joined === false) {
    return "Not joined yet";
  }
  if (item.outcome === "cancelled" || item.error === "cancelled") {
    return "Not sent: the job was cancelled first";
  }
  if (!item.error) {
    return "";
  }
  return failureText(typeof item.error === "object" ? item.error : { error: item.error, retryAfter: item.retryAfter });
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls getJob about every `interval` ms until the job is done or failed, or `isCancelled()`.
// onUpdate(job) runs after every answer. Errors propagate (the caller offers to resume).
/**
 * @param {string} jobId
 * @param {(job: Job) => void} onUpdate
 * @param {{interval?: number, isCancelled?: () => boolean}} [options]
 * @returns {Promise<Job>}
 */
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

// Items the job has finished with: everything but those still to do and those a cancel stopped.
/** @param {Job} job */
export function processed(job) {
  const c = job.counts || {};
  return Math.max(0, (job.total || 0) - (c.pending || 0) - (c.cancelled || 0));
}

// "1,200 of 2,000 processed, 800 cancelled": a cancelled job's bar is never full.
/** @param {Job} job */
export function processedText(job) {
  const total = job.total || 0;
  const cancelled = (job.counts || {}).cancelled || 0;
  return `${count(processed(job))} of ${count(total)} processed${cancelled ? `, ${count(cancelled)} cancelled` : ""}`;
}

// A dry run's progress: how many emails are checked ("Checked 800 of 2,000 emails").
/** @param {Job} job */
export function checkedText(job) {
  const total = job.total || 0;
  return `Checked ${count(Math.min(job.checked || 0, total))} of ${count(total)} ${total === 1 ? "email" : "emails"}`;
}

// A progress bar with an accessible name; update(job) moves it. An invitation counts what it has
// processed; a dry run (its would-be invites stay pending) counts what it has checked. Items a
// cancel stopped are not processed: the bar of a cancelled job stops where the job stopped.
/**
 * @typedef {HTMLDivElement & {
 *   pending(words: string): void,
 *   update(job: Job, describe?: (job: Job, done: number, total: number) => string): void,
 * }} ProgressBar
 */
/**
 * @param {string} label
 * @returns {ProgressBar}
 */
export function progressBar(label) {
  const fill = h("div", { class: "progress-fill" });
  const text = h("p", { class: "progress-text" });
  const bar = h(
    "div",
    { class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuetext": "Starting…" },
    fill,
  );
  const el = h("div", { class: "progress-block" }, bar, text);

  /** @param {string} words */
  function indeterminate(words) {
    bar.removeAttribute("aria-valuenow");
    bar.removeAttribute("aria-valuemax");
    bar.setAttribute("aria-valuetext", words);
    bar.dataset.state = "indeterminate"; // styles.css animates it (still under reduced motion)
    fill.style.width = "";
    text.textContent = words;
  }

  return Object.assign(el, {
    // Before there is a job to show (the request that starts it is in flight).
    /** @param {string} words */
    pending: (words) => indeterminate(words),
    /**
     * @param {Job} job
     * @param {(job: Job, done: number, total: number) => string} [describe]
     */
    update: (job, describe) => {
    delete bar.dataset.state;
    const total = job.total || 0;
    const checking = job.dryRun;
    const c = job.counts || {};
    const done = checking ? Math.min(job.checked || 0, total) : processed(job);
    const words = checking
      ? `${checkedText(job)}${c.cancelled ? `, ${count(c.cancelled)} cancelled` : ""}`
      : processedText(job);
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuetext", words);
    fill.style.width = total ? `${Math.round((done / total) * 100)}%` : finished(job) ? "100%" : "0%";
    text.textContent = describe ? describe(job, done, total) : words;
    },
  });
}

// The job's summary cards, zero counts left out: what it did first, then what needs attention.
/** @param {Job} job */
export function countCards(job) {
  const c = job.counts || {};
  const joined = job.followUp && typeof job.followUp.joined === "number" ? job.followUp.joined : 0;
  /**
   * @param {Outcome} key
   * @param {Look} [o]
   */
  const card = (key, o = OUTCOMES[key]) => ({ key, label: o.label, tone: o.tone, value: c[key] || 0 });
  // While a preview runs, its pending items are would-be invites only once they are checked.
  const settled = (c.invited || 0) + (c.alreadyHasAccess || 0) + (c.invalid || 0) + (c.failed || 0) + (c.cancelled || 0);
  const would = finished(job) ? c.pending || 0 : Math.max(0, (job.checked || 0) - settled);
  return summaryCards(job.dryRun
    ? [
        { ...card("pending", WOULD_INVITE), value: would },
        { ...card("failed"), label: "Could not be checked" },
        card("cancelled"),
        card("invalid"),
        card("alreadyHasAccess"),
      ]
    : [
        card("invited"),
        { key: "joined", label: JOINED.label, tone: JOINED.tone, value: joined },
        card("failed"),
        card("cancelled"),
        card("invalid"),
        card("alreadyHasAccess"),
        { ...card("pending"), label: "To go" },
      ]);
}

// The counts in a few words: "Would invite 3 · 1 has access · 1 invalid" for a preview,
// "236 invited · 4 invalid" for an invitation; zero counts left out.
/** @param {Job} job */
export function countsText(job) {
  const c = job.counts || {};
  const parts = [];
  if (job.dryRun) {
    parts.push(finished(job) ? `Would invite ${count(c.pending || 0)}` : `Checking ${count(job.total || 0)}`);
  } else if (c.invited) {
    parts.push(`${count(c.invited)} invited`);
  }
  if (c.alreadyHasAccess) {
    parts.push(`${count(c.alreadyHasAccess)} ${c.alreadyHasAccess === 1 ? "has" : "have"} access`);
  }
  if (c.invalid) {
    parts.push(`${count(c.invalid)} invalid`);
  }
  if (c.failed) {
    parts.push(`${count(c.failed)} failed`);
  }
  if (c.cancelled) {
    parts.push(`${count(c.cancelled)} cancelled`);
  }
  if (!job.dryRun && c.pending && !finished(job)) {
    parts.push(`${count(c.pending)} to go`);
  }
  if (job.followUp && typeof job.followUp.joined === "number") {
    parts.push(`${count(job.followUp.joined)} joined`);
  }
  return parts.join(" · ") || (job.dryRun ? "Would invite 0" : "Nothing to do");
}

// Time left and pace while a job runs, from its progress over the last polls, why it is paused
// (paused.reason), its notBefore (a wait Confluence asked for) and estimatedPoints (what it
// costs). Fields the backend leaves out are simply not mentioned. `pace` is a pacer() following
// this job.
/**
 * @param {Job} job
 * @param {Pacer | null} [pace]
 */
export function etaText(job, pace) {
  if (finished(job)) {
    return "";
  }
  const parts = [];
  if (job.paused && job.paused.reason) {
    parts.push(`Paused: ${job.paused.reason}`); // its admin's background calls are refused
  }
  const wait = waitText(job);
  if (wait) {
    parts.push(wait);
  }
  const rate = pace ? pace.rate() : 0;
  if (rate > 0) {
    const left = job.dryRun ? Math.max(0, (job.total || 0) - (job.checked || 0)) : (job.counts || {}).pending || 0;
    parts.push(`${count(Math.round(rate * 60))} a minute`);
    if (left) {
      parts.push(`${duration(left / rate)} left`);
    }
  }
  const points = job.estimatedPoints;
  if (typeof points === "number" && Number.isFinite(points) && points > 0) {
    parts.push(`about ${count(points)} Confluence points`);
  }
  return parts.join(" · ");
}

// A job held back (a Retry-After, a spent quota window, another worker's invitations): its
// notBefore is still ahead.
/** @param {Job} job */
export function isWaiting(job) {
  const until = job && job.notBefore ? new Date(job.notBefore).getTime() : NaN;
  return Number.isFinite(until) && until > Date.now();
}

// Why a waiting job waits, and until when, in one sentence ("" while it may run): its notBefore
// and waitReason (README "The job model").
/** @param {Job} job */
export function waitText(job) {
  const until = job.notBefore;
  if (finished(job) || !until || !isWaiting(job)) {
    return "";
  }
  const when = whenWords(until);
  switch (job.waitReason) {
    case "rate_limited":
      return `Waiting for Confluence's points quota, which resumes ${when}; the job then goes on by itself`;
    case "unavailable":
    case "timeout":
    case "connection_error":
      return `Confluence did not answer; trying again ${when}`;
    case "no_token":
      return `Waiting for Confluence to let Access Desk act for the job's admin; trying again ${when}`;
    case "in_flight":
      return `Waiting for invitations another server of Access Desk sent; going on ${when}`;
    default:
      return `Waiting for Confluence; going on ${when}`;
  }
}

/** @param {number} seconds */
export function duration(seconds) {
  if (seconds < 60) {
    return "less than a minute";
  }
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) {
    return minutes === 1 ? "about 1 minute" : `about ${minutes} minutes`;
  }
  const hours = Math.round(minutes / 6) / 10;
  return `about ${hours} hours`;
}

// Items done (a preview's: checked) per second over the last minute of polls: add(job) after each
// poll, rate() to read.
/** @typedef {{add(job: Job): void, rate(): number}} Pacer */
/**
 * @param {() => number} [now]
 * @returns {Pacer}
 */
export function pacer(now = () => Date.now()) {
  /** @type {[number, number][]} [when, items done] */
  const samples = [];
  return {
    add(job) {
      samples.push([now(), job.dryRun ? job.checked || 0 : processed(job)]);
      while (samples.length > 2 && samples[0][0] < now() - 60000) {
        samples.shift();
      }
    },
    rate() {
      if (samples.length < 2) {
        return 0;
      }
      const [t0, n0] = samples[0];
      const [t1, n1] = samples[samples.length - 1];
      // Less than 3 s of polls says nothing about the pace yet.
      return t1 - t0 >= 3000 && n1 > n0 ? ((n1 - n0) * 1000) / (t1 - t0) : 0;
    },
  };
}

// What needs attention first: failures, then those not sent, invalid addresses, those still to
// do (or would be invited), those who have access, and the invited last.
/** @type {Record<string, number>} */
const RANK = { failed: 0, cancelled: 1, invalid: 2, pending: 3, alreadyHasAccess: 4, invited: 5 };

/**
 * @param {JobItem[]} items
 * @returns {JobItem[]}
 */
export function problemsFirst(items) {
  return items
    .map((it, at) => ({ rank: RANK[it.outcome] ?? 3, at, it }))
    .sort((a, b) => a.rank - b.rank || a.at - b.at)
    .map((x) => x.it);
}

/**
 * @param {Job} job
 * @param {string} [caption]
 * @returns {import("./table.js").PagedTable<JobItem>}
 */
export function itemsTable(job, caption = "Job items") {
  const table = pagedTable({
    caption,
    rows: problemsFirst(job.items || []),
    empty: "This job has no items.",
    columns: [
      { label: "Email", cell: (it) => fit(it.email, "email"), sort: (it) => it.email },
      { label: "Outcome", cell: (it) => { const o = outcomeOf(it, job.dryRun); return lozenge(o.label, o.tone); }, sort: (it) => outcomeLabel(it, job.dryRun) },
      { label: "Detail", cell: (it) => outcomeDetail(it), text: (it) => outcomeDetail(it) },
    ],
    search: (it) => `${it.email} ${outcomeLabel(it, job.dryRun)} ${outcomeDetail(it)}`,
  });
  const update = table.update;
  table.update = (items) => update(problemsFirst(items));
  return table;
}

/** @param {Job} job */
export function itemsCsv(job) {
  return toCsv(["email", "outcome", "detail", "joined"], (job.items || []).map((it) => [it.email, it.outcome, outcomeDetail(it),
    typeof it.joined === "boolean" ? (it.joined ? "yes" : "no") : ""]));
}

/** @param {Job} job */
export function jobTitle(job) {
  const total = job.total || 0;
  const mode = job.dryRun ? `Preview of ${count(total)} ${total === 1 ? "email" : "emails"}` : `Invitation of ${count(total)} ${total === 1 ? "person" : "people"}`;
  const source = job.source === "webhook" ? "by webhook" : "from the panel";
  return `${mode} ${source}, ${formatDate(job.createdAt)}`;
}
