// @ts-check
// Why entries failed, one honest message per cause with what the person can do: refused for their
// account (permanent: trying again will not help), rate limited (wait, then try again), Confluence
// unavailable (try again in a few minutes), an answer Access Desk could not use, or a call that
// failed as a whole (its own words). Look up and Check access show these above their tables.
import { message, plural } from "./dom.js";

/** @typedef {{error?: string, retryAfter?: number, reason?: string}} FailedEntry */

const UNAVAILABLE = new Set(["unavailable", "timeout", "connection_error"]);

// The cause of one failed entry ({error, retryAfter?, reason?}): refused | rate_limited |
// unavailable | unusable | call (a whole call failed; `reason` holds its words).
/** @param {FailedEntry | null | undefined} entry */
export function causeOf(entry) {
  const error = String((entry && entry.error) || "");
  if (entry && entry.reason) {
    return "call";
  }
  if (error === "not_permitted") {
    return "refused";
  }
  if (error === "rate_limited") {
    return "rate_limited";
  }
  if (UNAVAILABLE.has(error) || /^upstream_error 5\d\d$/.test(error)) {
    return "unavailable";
  }
  return "unusable";
}

/** @param {FailedEntry[]} entries */
function waitWords(entries) {
  const longest = Math.max(0, ...entries.map((e) => Number(e.retryAfter) || 0));
  if (!longest) {
    return "in a minute";
  }
  if (longest < 90) {
    return `in ${Math.ceil(longest)} s`;
  }
  const minutes = Math.ceil(longest / 60);
  return `in ${plural(minutes, "minute")}`;
}

// Section messages for `failed` (entries that failed), grouped by cause, in the order people should
// read them: what will not change first. `noun` is "account id" or "email"; `done` what did not
// happen to them ("looked up", "checked"); `refused` says who can do it instead.
/**
 * @param {FailedEntry[]} failed
 * @param {{noun: string, done: string, refused: string}} words
 */
export function causeMessages(failed, { noun, done, refused }) {
  /** @type {Map<string, FailedEntry[]>} */
  const groups = new Map();
  for (const entry of failed) {
    const cause = causeOf(entry);
    groups.set(cause, [...(groups.get(cause) || []), entry]);
  }
  /** @param {FailedEntry[]} list */
  const these = (list) => `${plural(list.length, noun)} ${list.length === 1 ? "was" : "were"} not ${done}`;
  const out = [];
  const refusedList = groups.get("refused");
  if (refusedList) {
    out.push(message("error", {
      title: "Confluence refused this for your account",
      text: `${these(refusedList)}: Confluence does not allow it for the account you are signed in with, so trying again will not help. ${refused}`,
    }));
  }
  const calls = groups.get("call");
  if (calls) {
    const reasons = [...new Set(calls.map((e) => e.reason))];
    out.push(message("error", { title: `${these(calls)}`, text: reasons.join(" ") }));
  }
  const limited = groups.get("rate_limited");
  if (limited) {
    out.push(message("warning", {
      title: "Confluence asked Access Desk to slow down",
      text: `${these(limited)}: Confluence's rate limit was reached. Try them again ${waitWords(limited)}; the rest of the answer stands.`,
    }));
  }
  const down = groups.get("unavailable");
  if (down) {
    out.push(message("warning", {
      title: "Confluence did not answer",
      text: `${these(down)}: Confluence is unavailable right now or did not answer in time. Try them again ${down.some((e) => Number(e.retryAfter) > 0) ? waitWords(down) : "in a few minutes"}; the rest of the answer stands.`,
    }));
  }
  const odd = groups.get("unusable");
  if (odd) {
    out.push(message("warning", {
      title: "Confluence's answer could not be used",
      text: `${these(odd)}: Confluence answered with an error or in a form Access Desk does not read. Try them again; if it keeps happening, a Confluence administrator can run Diagnose to see why.`,
    }));
  }
  return out;
}
