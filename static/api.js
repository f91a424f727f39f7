// @ts-check
// Resolver calls (the README's resolver table) and the words the panel uses for every way they can go wrong.
import { BridgeUnavailable, invokeRemote } from "./bridge.js";

export const MAX_ENTRIES = 10000;

// A resolver call that failed: the HTTP status (0: no answer), the error code and the message in words.
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {unknown} [details] the answer's details (which fields were wrong, the admin check's reading)
   */
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

// A 429 "busy" (this user or site has too many calls in flight on the server) is retried after a
// short pause, a few times, before it is shown: it clears as soon as an earlier call ends.
const BUSY_RETRIES = 3;
const BUSY_PAUSE_MS = 1000;

// Resolver calls that may spend Confluence points: the quota meter refreshes after each (quota.js).
const SPENDING = new Set(["lookupUsers", "checkAccess", "inviteEmails", "getJob", "retryJob", "diagnose", "whoami"]);
export const SPENT_EVENT = "access-desk:points-spent";

/**
 * Calls resolver `key` with `payload`; answers its JSON object (any: the resolver's own shape, as
 * docs/contract.md gives it), or throws an ApiError with the failure in words.
 * @param {string} key
 * @param {object} [payload]
 * @returns {Promise<any>}
 */
export async function call(key, payload = {}) {
  try {
    return await callRetrying(key, payload);
  } finally {
    if (SPENDING.has(key) && typeof document !== "undefined") {
      document.dispatchEvent(new CustomEvent(SPENT_EVENT, { detail: key }));
    }
  }
}

/**
 * @param {string} key
 * @param {object} payload
 */
async function callRetrying(key, payload) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await callOnce(key, payload);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 429 && err.code === "busy") || attempt >= BUSY_RETRIES) {
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, BUSY_PAUSE_MS * (attempt + 1)));
    }
  }
}

/**
 * @param {string} key
 * @param {object} payload
 */
async function callOnce(key, payload) {
  let answer;
  try {
    answer = await invokeRemote({ path: `/resolvers/${key}`, method: "POST", body: payload });
  } catch (err) {
    if (err instanceof BridgeUnavailable) {
      throw new ApiError(0, "no_bridge", err.message);
    }
    const text = String((err && err.message) || err);
    if (/\b401\b|invocation token/i.test(text)) {
      throw new ApiError(401, "invalid_token", NOT_VERIFIED);
    }
    throw new ApiError(0, "unreachable", `Access Desk could not be reached: ${text}`);
  }
  const { status, body } = answer;
  if (status >= 200 && status < 300) {
    return body && typeof body === "object" ? body : {};
  }
  const code = body && typeof body === "object" ? body.error : undefined;
  const serverMessage = body && typeof body === "object" ? body.message : undefined;
  const details = body && typeof body === "object" ? body.details : undefined;
  throw new ApiError(status, code || `http_${status}`, describe(status, code, serverMessage, details), details);
}

// 401 is only ever a Forge invocation token Access Desk could not verify: a page open for very long,
// or (when it keeps happening) a server set up for another app. Say what to do about either.
const NOT_VERIFIED = "Access Desk could not verify this request from Confluence. Reload the page and try again. "
  + "If it happens again, the Access Desk server is not set up for this app: ask whoever runs it to check its FORGE_APP_ID.";

/**
 * A failed call in words: what happened and what to do.
 * @param {number} status
 * @param {string | undefined} code
 * @param {string} [serverMessage]
 * @param {unknown} [details]
 */
export function describe(status, code, serverMessage, details) {
  if (status === 401) {
    return NOT_VERIFIED;
  }
  if (status === 403 && code === "not_allowed") {
    return "Only Confluence administrators can do this.";
  }
  if (status === 403 && code === "untrusted_site") {
    return "The Access Desk server does not accept calls for this Confluence site. Ask whoever runs it to add this site to API_BASE_URL_ALLOWLIST.";
  }
  if (status === 404 && code === "unknown_resolver") {
    return "This Access Desk server does not offer this yet. Ask whoever runs it to update it.";
  }
  if (status === 413 && code === "too_many") {
    return "At most 10,000 entries at once.";
  }
  if (status === 413) {
    return "That is too much to send at once. Send fewer entries (each call is limited to 500 KB).";
  }
  if (status === 400) {
    const fields = details && typeof details === "object" ? Object.entries(details) : [];
    const extra = fields
      .slice(0, 3)
      .map(([field, why]) => `${fieldName(field)}: ${typeof why === "string" ? why : JSON.stringify(why)}`)
      .join("; ");
    const base = serverMessage || "Some of what was sent is not valid.";
    return extra ? `${base} (${extra})` : base;
  }
  if (status === 404 && code === "not_found") {
    return serverMessage || "That could not be found. It may belong to another installation.";
  }
  if (status >= 500 || status === 0) {
    return `Access Desk could not finish this (error ${status || "unknown"}). Try again in a moment.`;
  }
  return serverMessage || `Something went wrong (error ${status}).`;
}

// A field the backend names ("emails[3]", "accountIds", "limit") as a person would: "entry 4".
/** @param {string} field */
function fieldName(field) {
  const at = /^[A-Za-z]+\[(\d+)\]$/.exec(field);
  if (at) {
    return `entry ${Number(at[1]) + 1}`;
  }
  /** @type {Record<string, string>} */
  const names = { emails: "the list", accountIds: "the list", jobId: "the job", limit: "the page size", before: "the page" };
  return names[field] || field;
}

// A failed entry ({"error", "retryAfter"?}) in words.
/** @param {{error?: unknown, retryAfter?: unknown} | null | undefined} entry */
export function failureText(entry) {
  const error = entry && entry.error;
  const wait = entry ? Number(entry.retryAfter) : NaN;
  if (error === "rate_limited") {
    return Number.isFinite(wait) && wait > 0
      ? `Confluence is busy; try again in ${Math.ceil(wait)} s`
      : "Confluence is busy; try again shortly";
  }
  if (Number.isFinite(wait) && wait > 0) {
    return `${humanize(error)}; try again in ${Math.ceil(wait)} s`;
  }
  return humanize(error);
}

/** @param {unknown} error */
function humanize(error) {
  /** @type {Record<string, string>} */
  const known = {
    timeout: "Confluence did not answer in time",
    unavailable: "Confluence is unavailable right now",
    connection_error: "Confluence could not be reached",
    not_permitted: "Confluence refused this for your account",
    bad_response: "Confluence sent an answer Access Desk could not read",
  };
  if (!error) {
    return "Failed";
  }
  const text = String(error);
  if (known[text]) {
    return known[text];
  }
  if (text.startsWith("rejected")) {
    return `Confluence rejected this${text.includes(":") ? `: ${text.split(":").slice(1).join(":").trim()}` : ""}`;
  }
  if (text.startsWith("upstream_error")) {
    return `Confluence answered with an error${text.replace("upstream_error", "").trim() ? ` (${text.replace("upstream_error", "").trim()})` : ""}`;
  }
  return text.replaceAll("_", " ");
}
