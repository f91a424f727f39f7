// Confluence's points quota in the panel: what a lookup or invite will cost, and a small meter of the pool.
// The cost table mirrors costs.COSTS on the server (README, "Confluence's points quota").
import { call } from "./api.js";
import { count, formatDate, h } from "./dom.js";

const IDS_PER_REQUEST = 250;
const EMAILS_PER_REQUEST = 100;
const PER_OBJECT = 2; // a user object, or an email checked
const DEFAULT_LIMIT = 65000; // the app's pool per hour when Confluence has not said yet

export function lookupPoints(ids) {
  return Math.ceil(ids / IDS_PER_REQUEST) + PER_OBJECT * ids;
}

export function invitePoints(emails, dryRun = false) {
  const check = Math.ceil(emails / EMAILS_PER_REQUEST) + PER_OBJECT * emails;
  return check + (dryRun ? 0 : Math.ceil(emails / EMAILS_PER_REQUEST));
}

function windowWords(pool) {
  return !pool || !pool.resetAt ? "this hour" : "this window";
}

// "about 20,200 points of the app's 65,000 this hour"
export function costLine(points, pool) {
  const whose = pool && pool.scope === "site" ? "this site's" : "the app's";
  const limit = (pool && pool.limit) || DEFAULT_LIMIT;
  const rounded = points >= 1000 ? Math.round(points / 100) * 100 : points;
  return `about ${count(rounded)} points of ${whose} ${count(limit)} ${windowWords(pool)}`;
}

let last = null; // the pool as the quota resolver last answered (admins only)

export async function readPool() {
  try {
    last = await call("quota", {});
  } catch {
    last = null; // not an admin, or no answer: the panel works without the meter
  }
  return last;
}

export function lastPool() {
  return last;
}

// A small meter: the share of the window's points left, and when it resets or until when calls are held.
export function quotaMeter() {
  const bar = h("meter", { min: "0", max: "1", low: "0.2", optimum: "1", value: "1", "aria-label": "Confluence points left" });
  const text = h("span", { class: "quota-text" });
  const el = h("div", { class: "quota-meter", hidden: true }, bar, text);
  async function refresh() {
    const pool = await readPool();
    if (!pool || pool.limit == null || pool.remaining == null) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    bar.value = Math.max(0, Math.min(1, pool.remaining / pool.limit));
    const whose = pool.scope === "site" ? "This site's" : "The app's";
    let words = `${whose} Confluence points: ${count(pool.remaining)} of ${count(pool.limit)} left`;
    if (pool.heldUntil) {
      words += `; calls held until ${formatDate(pool.heldUntil)}`;
    } else if (pool.resetAt) {
      words += `; resets ${formatDate(pool.resetAt)}`;
    }
    if (pool.nearLimit || pool.remaining < pool.limit * 0.2) {
      words += " (jobs wait for the next window)";
    }
    text.textContent = words;
  }
  return { el, refresh };
}
