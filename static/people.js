// @ts-check
// Account ids shown as people: an initials avatar and the display name, the id on hover. Names come
// from lookupUsers, asked in batches of up to 100 ids a short moment after they are first shown (the
// backend answers ids it fetched recently from its lookup cache, so this costs almost no quota). A
// page never waits for it: the id shows until the name arrives, and stays when the lookup fails.
import { call } from "./api.js";
import { initials } from "./avatars.js";
import { h } from "./dom.js";

const BATCH = 100;
const WAIT_MS = 30; // gather the ids a page renders at once into one call
// Actors that are not accounts (audit entries of the webhook or of Forge itself).
/** @type {Record<string, string>} */
const NOT_PEOPLE = { webhook: "Webhook", forge: "Forge", panel: "Access Desk", system: "Access Desk" };

/** @type {Map<string, string | null>} accountId -> display name, or null when it could not be found */
const known = new Map();
/** @type {Map<string, Promise<string | null>>} accountId -> its name, once asked */
const asked = new Map();
/** @type {Map<string, (name: string | null) => void>} accountId -> resolve function */
const waiters = new Map();
/** @type {string[]} */
let queue = [];
/** @type {ReturnType<typeof setTimeout> | null} */
let timer = null;

// The name for an account id (a Promise, null when unknown). Cached for the page's life.
/**
 * @param {unknown} accountId
 * @returns {Promise<string | null>}
 */
export function nameOf(accountId) {
  const id = String(accountId || "");
  if (!id || NOT_PEOPLE[id]) {
    return Promise.resolve(NOT_PEOPLE[id] || null);
  }
  if (known.has(id)) {
    return Promise.resolve(known.get(id) ?? null);
  }
  let pending = asked.get(id);
  if (!pending) {
    pending = new Promise((resolve) => {
      waiters.set(id, resolve);
      queue.push(id);
      if (!timer) {
        timer = setTimeout(flush, WAIT_MS);
      }
    });
    asked.set(id, pending);
  }
  return pending;
}

// The name if it is already known (for sentences and CSV rows built at once), else null.
/**
 * @param {unknown} accountId
 * @returns {string | null}
 */
export function knownName(accountId) {
  const id = String(accountId || "");
  return NOT_PEOPLE[id] || known.get(id) || null;
}

async function flush() {
  timer = null;
  const ids = queue;
  queue = [];
  for (let at = 0; at < ids.length; at += BATCH) {
    const batch = ids.slice(at, at + BATCH);
    /** @type {Record<string, string | null>} */
    let names = {};
    try {
      const { users = [] } = await call("lookupUsers", { accountIds: batch });
      names = Object.fromEntries(users.map((/** @type {import("./lookup.js").User} */ u) => [u.accountId, u.displayName || u.publicName || null]));
    } catch {
      // Not a reason to stop the page: these ids stay ids (and are asked again next time).
      for (const id of batch) {
        asked.delete(id);
        settle(id, null, false);
      }
      continue;
    }
    for (const id of batch) {
      settle(id, names[id] || null, true);
    }
  }
}

/**
 * @param {string} id
 * @param {string | null} name
 * @param {boolean} keep
 */
function settle(id, name, keep) {
  if (keep) {
    known.set(id, name);
  }
  const resolve = waiters.get(id);
  waiters.delete(id);
  if (resolve) {
    resolve(name);
  }
}

const HUES = ["#0c66e4", "#6e5dc6", "#1f845a", "#a54800", "#ae2e24", "#206a83"];

/** @param {string} seed */
function hue(seed) {
  let hash = 0;
  for (const c of String(seed)) {
    hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  }
  return HUES[hash % HUES.length];
}

// A person: initials avatar and name (the id until the name is known, or `fallback` when given); the
// id on hover and in the accessible description. `plain` leaves the avatar out (inside a sentence).
/**
 * @param {unknown} accountId
 * @param {{plain?: boolean, fallback?: string | null}} [options]
 */
export function person(accountId, { plain = false, fallback = null } = {}) {
  const id = String(accountId || "");
  const label = NOT_PEOPLE[id] || knownName(id) || fallback || id || "Unknown";
  const text = h("span", { class: "person-name", text: label });
  const standIn = Boolean(fallback) && label === fallback; // no name (yet): a neutral "Y" for "You"
  const badge = plain ? null : h("span", { class: "avatar avatar-initials avatar-small", "aria-hidden": "true", text: standIn ? label.slice(0, 1) : initials(label) });
  if (badge) {
    badge.style.backgroundColor = NOT_PEOPLE[id] || standIn ? "#626f86" : hue(id);
  }
  const el = h("span", { class: `person${plain ? " person-plain" : ""}`, title: NOT_PEOPLE[id] ? null : `Account id: ${id}`, "data-account-id": id }, badge, text);
  if (!NOT_PEOPLE[id] && !known.has(id) && id) {
    el.classList.add("person-pending");
    nameOf(id).then((name) => {
      el.classList.remove("person-pending");
      if (name) {
        text.textContent = name;
        if (badge) {
          badge.textContent = initials(name);
          badge.style.backgroundColor = hue(id);
        }
      }
    });
  }
  return el;
}
