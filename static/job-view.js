// Invite jobs (the Job of the README's resolver table): polling, counts, progress, pace and per-row outcomes.
import { call, failureText } from "./api.js";
import { toCsv } from "./csv.js";
import { count, formatDate, h, lozenge } from "./dom.js";
import { whenWords } from "./quota.js";
import { fit, pagedTable } from "./table.js";

// One word and one colour per outcome, on every tab (access.js BUCKETS uses the same).
export const OUTCOMES = {
  pending: { label: "Pending", tone: "default" },
  invited: { label: "Invited", tone: "success" },
  alreadyHasAccess: { label: "Has access", tone: "info" },
  invalid: { label: "Invalid email", tone: "removed" },
  failed: { label: "Failed", tone: "moved" },
};
const WOULD_INVITE = { label: "Would be invited", tone: "discovery" };
// An invitee the follow-up found on the site (README "Follow-ups"): the end of an invitation's story.
export const JOINED = { label: "Joined", tone: "joined" };

export const STATES = {
  queued: { label: "Queued", tone: "default" },
  running: { label: "In progress", tone: "info" },
  done: { label: "Done", tone: "success" },
  failed: { label: "Stopped", tone: "removed" },
};

export function finished(job) {
  return job.state === "done" || job.state === "failed";
}

export function stateLozenge(job) {
  const s = STATES[job.state] || { label: job.state || "unknown", tone: "default" };
  return lozenge(s.label, s.tone);
}

export function outcomeLabel(item, dryRun) {
  return outcomeOf(item, dryRun).label;
}

export function outcomeOf(item, dryRun) {
  if (item.outcome === "pending" && dryRun) {
    return WOULD_INVITE;
  }
  if (item.outcome === "failed" && item.error === "cancelled") {
    return { label: "Cancelled", tone: "default" };
  }
  if (item.outcome === "invited" && item.joined === true) {
    return JOINED;
  }
  return OUTCOMES[item.outcome] || { label: String(item.outcome), tone: "default" };
}

export function outcomeDetail(item) {
  if (item.outcome === "invited" && item.joined === true) {
    return "Invited, has since joined the site";
  }
  if (item.outcome === "invited" && item.joined === false) {
    return "Not joined yet";
  }
  if (item.error === "cancelled") {
    return "Not started: the job was cancelled";
  }
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
  if (job.followUp && typeof job.followUp.joined === "number") {
    keys.splice(1, 0, "joined");
  }
  return h("ul", { class: "stat-cards", "aria-label": "Counts" },
    keys.map((k) => {
      const o = k === "joined" ? JOINED : k === "pending" && job.dryRun ? WOULD_INVITE : OUTCOMES[k];
      const value = k === "joined" ? job.followUp.joined : c[k] || 0;
      return h("li", { class: `stat stat-${o.tone}` },
        h("span", { class: "stat-value", text: count(value) }),
        h("span", { class: "stat-label", text: o.label }));
    }));
}

// The counts in a few words: "Would invite 3 · 1 has access · 1 invalid" for a preview,
// "236 invited · 4 invalid" for an invitation; zero counts left out.
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
export function etaText(job, pace) {
  if (finished(job)) {
    return "";
  }
  const parts = [];
  if (job.paused && job.paused.reason) {
    parts.push(`Paused: ${job.paused.reason}`); // its admin's background calls are refused
  }
  if (isWaiting(job)) {
    parts.push(waitingWords(job));
  }
  const rate = pace ? pace.rate() : 0;
  if (rate > 0 && !job.dryRun) {
    const left = (job.counts || {}).pending || 0;
    parts.push(`${count(Math.round(rate * 60))} a minute`);
    if (left) {
      parts.push(`${duration(left / rate)} left`);
    }
  }
  if (Number.isFinite(job.estimatedPoints) && job.estimatedPoints > 0) {
    parts.push(`about ${count(job.estimatedPoints)} Confluence points`);
  }
  return parts.join(" · ");
}

// A job Confluence's quota (or a Retry-After) holds back: its notBefore is still ahead.
export function isWaiting(job) {
  const until = job && job.notBefore ? new Date(job.notBefore).getTime() : NaN;
  return Number.isFinite(until) && until > Date.now();
}

// The one sentence for a waiting job: what it waits for and until when.
export function waitingWords(job) {
  return `Waiting for Confluence's points quota, which resumes ${whenWords(job.notBefore)}; the job then goes on by itself`;
}

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

// Items done per second over the last minute of polls: add(job) after each poll, rate() to read.
export function pacer(now = () => Date.now()) {
  const samples = [];
  return {
    add(job) {
      samples.push([now(), processed(job)]);
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

export function itemsTable(job, caption = "Job items") {
  return pagedTable({
    caption,
    rows: job.items || [],
    empty: "This job has no items.",
    columns: [
      { label: "Email", cell: (it) => fit(it.email, "email"), sort: (it) => it.email },
      { label: "Outcome", cell: (it) => { const o = outcomeOf(it, job.dryRun); return lozenge(o.label, o.tone); }, sort: (it) => outcomeLabel(it, job.dryRun) },
      { label: "Detail", cell: (it) => outcomeDetail(it) },
    ],
    search: (it) => `${it.email} ${outcomeLabel(it, job.dryRun)} ${outcomeDetail(it)}`,
  });
}

export function itemsCsv(job) {
  return toCsv(["email", "outcome", "detail", "joined"], (job.items || []).map((it) => [it.email, it.outcome, outcomeDetail(it),
    typeof it.joined === "boolean" ? (it.joined ? "yes" : "no") : ""]));
}

export function jobTitle(job) {
  const total = job.total || 0;
  const mode = job.dryRun ? `Preview of ${count(total)} ${total === 1 ? "email" : "emails"}` : `Invitation of ${count(total)} ${total === 1 ? "person" : "people"}`;
  const source = job.source === "webhook" ? "by webhook" : "from the panel";
  return `${mode} ${source}, ${formatDate(job.createdAt)}`;
}
