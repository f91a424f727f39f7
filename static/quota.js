// @ts-check
// Confluence's points quota in the panel: what a lookup or invite will cost, and a small meter of the pool.
// Costs come from the quota resolver (what the backend learned from Confluence's answers); until it has
// answered, the starting estimates of costs.COSTS are used. Anyone who cannot see the pool (not an
// administrator) sees the cost alone, never a pool size the app does not have.
import { SPENT_EVENT, call } from "./api.js";
import { count, h } from "./dom.js";

/**
 * The points pool as the quota resolver answers it (docs/contract.md §6; administrators only).
 * @typedef {object} Pool
 * @property {number | null} [limit]
 * @property {number | null} [remaining]
 * @property {boolean} [remainingEstimated]
 * @property {boolean} [nearLimit]
 * @property {"app" | "site"} [scope]
 * @property {string | null} [resetAt]
 * @property {string | null} [heldUntil]
 * @property {number} [spent]
 * @property {number} [share]
 * @property {Partial<Record<CostKind, Cost>>} [costs]
 */
/** @typedef {Pool & {limit: number, remaining: number}} MeteredPool a pool whose size and rest are known */
/** @typedef {"lookup" | "check" | "invite"} CostKind */
/** @typedef {{base: number, perObject: number}} Cost */

const IDS_PER_REQUEST = 250;
const EMAILS_PER_REQUEST = 100;
// The starting estimates (base, per object), as costs.COSTS on the server.
/** @type {Record<CostKind, Cost>} */
const STARTING = {
  lookup: { base: 1, perObject: 2 },
  check: { base: 1, perObject: 2 },
  invite: { base: 1, perObject: 0 },
};
const MIN_REFRESH_MS = 2000; // at most one quota call per 2 s, however many calls spend points

/** @type {Pool | null} the pool as the quota resolver last answered (administrators only) */
let last = null;

/** @param {CostKind} kind */
function cost(kind) {
  return (last && last.costs && last.costs[kind]) || STARTING[kind];
}

/**
 * @param {CostKind} kind
 * @param {number} n
 * @param {number} perRequest
 */
function pointsFor(kind, n, perRequest) {
  const c = cost(kind);
  return Math.ceil(Math.ceil(n / perRequest) * c.base + n * c.perObject);
}

/** @param {number} ids how many */
export function lookupPoints(ids) {
  return pointsFor("lookup", ids, IDS_PER_REQUEST);
}

/**
 * @param {number} emails how many
 * @param {boolean} [dryRun]
 */
export function invitePoints(emails, dryRun = false) {
  return pointsFor("check", emails, EMAILS_PER_REQUEST) + (dryRun ? 0 : pointsFor("invite", emails, EMAILS_PER_REQUEST));
}

// "about 20,200 points of the app's 65,000-point pool"; "about 20,200 Confluence points" when the pool is unknown.
/**
 * @param {number} points
 * @param {Pool | null} pool
 */
export function costLine(points, pool) {
  const rounded = points >= 1000 ? Math.round(points / 100) * 100 : points;
  if (!pool || !pool.limit) {
    return `about ${count(rounded)} Confluence points`;
  }
  const whose = pool.scope === "site" ? "this site's" : "the app's";
  return `about ${count(rounded)} points of ${whose} ${count(pool.limit)}-point pool`;
}

// When a moment is, from now, in words: "in 24 s", "at 14:00", "at 09:00 tomorrow", "at 09:00 on 3 Mar".
// Never a time in the past ("now" instead), never a full date for today.
/**
 * @param {string | number | Date} value
 * @param {Date} [now]
 */
export function whenWords(value, now = new Date()) {
  const at = new Date(value);
  const ms = at.getTime() - now.getTime();
  if (Number.isNaN(ms) || ms <= 500) {
    return "now";
  }
  if (ms < 90000) {
    return `in ${Math.ceil(ms / 1000)} s`;
  }
  const time = at.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  const tomorrow = new Date(now);
  tomorrow.setDate(now.getDate() + 1);
  if (at.toDateString() === now.toDateString()) {
    return `at ${time}`;
  }
  if (at.toDateString() === tomorrow.toDateString()) {
    return `at ${time} tomorrow`;
  }
  return `at ${time} on ${at.toLocaleDateString("en-GB", { day: "numeric", month: "short" })}`;
}

/** @returns {Promise<Pool | null>} */
export async function readPool() {
  try {
    last = await call("quota", {});
  } catch {
    last = null; // not an administrator, or no answer: the panel works without the meter
  }
  return last;
}

export function lastPool() {
  return last;
}

// The meter's sentence parts, from a quota answer (tested on their own).
/**
 * @param {MeteredPool} pool
 * @param {Date} [now]
 */
export function meterWords(pool, now = new Date()) {
  const whose = pool.scope === "site" ? "This site's" : "The app's";
  const left = `${whose} Confluence points: ${count(pool.remaining)} of ${count(pool.limit)} left`;
  const how = pool.remainingEstimated ? "estimated by Access Desk" : "as Confluence reported";
  const parts = [`${left} (${how})`];
  if (pool.heldUntil) {
    parts.push(`Confluence asked to wait: calls resume ${whenWords(pool.heldUntil, now)}`);
  } else if (pool.resetAt) {
    parts.push(`resets ${whenWords(pool.resetAt, now)}`);
  }
  if (typeof pool.spent === "number" && typeof pool.share === "number") {
    parts.push(`this site spent ${count(pool.spent)} of its ${count(pool.share)}-point share`);
  }
  const low = pool.nearLimit || pool.remaining < pool.limit * 0.2;
  return { text: parts.join(" · "), low, held: Boolean(pool.heldUntil) };
}

// A small meter: the share of the window's points left, when it resets (or until when calls are held),
// and this installation's own spend against its fair share. Refreshed after every call that may spend
// points (api.js says so), every 30 s (app.js), and once a countdown reaches zero.
/**
 * @param {Pool | null} pool
 * @returns {pool is MeteredPool}
 */
function metered(pool) {
  return pool !== null && pool.limit != null && pool.remaining != null;
}

export function quotaMeter() {
  const fill = h("div", { class: "quota-bar-fill" });
  const bar = h("div", { class: "quota-bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "Confluence points left" },
    fill);
  const text = h("span", { class: "quota-text" });
  const note = h("span", { class: "quota-note" });
  const el = h("div", { class: "quota-meter", hidden: true, "aria-live": "polite" }, bar, h("p", { class: "quota-words" }, text, note));
  /** @type {Pool | null} */
  let pool = null;
  let lastRead = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let pending = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let ticker;

  function render() {
    if (!metered(pool)) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    const share = Math.max(0, Math.min(1, pool.remaining / pool.limit));
    const words = meterWords(pool);
    bar.setAttribute("aria-valuenow", String(Math.round(share * 100)));
    bar.setAttribute("aria-valuetext", `${Math.round(share * 100)}% left`);
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    el.classList.toggle("quota-low", words.low);
    el.classList.toggle("quota-held", words.held);
    text.textContent = words.text;
    note.textContent = words.held ? "" : words.low ? " · Under 20% left: jobs wait for the next window; panel calls still go." : "";
    const next = pool.heldUntil || pool.resetAt;
    const ms = next ? new Date(next).getTime() - Date.now() : Infinity;
    clearTimeout(ticker);
    if (ms <= 500) {
      ticker = setTimeout(refresh, 1000); // the window turned: read the new one
    } else if (ms < 91000) {
      ticker = setTimeout(render, 1000); // count down the seconds
    }
  }

  async function refresh() {
    lastRead = Date.now();
    pool = await readPool();
    render();
  }

  function soon() {
    if (pending) {
      return;
    }
    const wait = Math.max(0, lastRead + MIN_REFRESH_MS - Date.now());
    pending = setTimeout(() => { pending = null; refresh(); }, wait);
  }

  document.addEventListener(SPENT_EVENT, soon);
  return { el, refresh };
}
