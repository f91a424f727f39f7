// @ts-check
// What counts as one entry of a pasted list: a line-for-line mirror of entries.py, which
// states the rules (lines; a header row read as the CSV loader does; "," and ";" separate, never
// spaces; Name <addr>, "Name" <addr> and mailto:addr give addr; an entry with a space inside is
// invalid as a whole; each entry once). tests/entry_cases.json checks both against one table.

/** @typedef {"email" | "accountId"} Kind the kind of list: emails or account ids */

export const MAX_LENGTH = 320;
// The longest entry of each kind: an email, or an account id (Atlassian's 128).
export const LIMITS = { email: MAX_LENGTH, accountId: 128 };
// An account id's form (account_ids.py): ASCII letters, digits, ":", "-", "_" and ".".
const ACCOUNT_ID = /^[A-Za-z0-9:_.-]{1,128}$/;

// Spelled out so that Python and JavaScript agree on every blank or invisible character.
const BLANKS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff";
const BLANK = new RegExp(`[${BLANKS}]`);
const TRIM = new RegExp(`^[${BLANKS}]+|[${BLANKS}]+$`, "g");
const LINES = /\r\n|[\n\r\x85\u2028\u2029]/;
const QUOTES = /^["']+|["']+$/g;
const ANGLE = /^[^<>]*<([^<>]*)>$/;
const MAILTO = /^mailto:/i;
const EMAIL = /^[^@]+@[^@]+$/;
// Column headers, ASCII letters in any case (the panel's CSV loader uses them too).
export const HEADERS = {
  email: /^(?:e-?mails?(?:[ _-]?address(?:es)?)?)$/i,
  accountId: /^(?:(?:atlassian[ _-]?)?account[ _-]?ids?)$/i,
};

/** @param {unknown} text */
export function trim(text) {
  return String(text).replace(TRIM, "");
}

// Emails equal with A-Z lower-cased only ("straße@" is not "strasse@"), account ids exactly.
/**
 * @param {unknown} value
 * @param {Kind} kind
 */
export function key(value, kind) {
  return kind === "email" ? String(value).replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32)) : String(value);
}

// [value, reason]: the entry a piece stands for, and why it is invalid (null when valid).
/**
 * @param {string} piece
 * @param {Kind} kind
 * @returns {[string, string | null]}
 */
export function normalise(piece, kind) {
  let value = trim(trim(piece).replace(QUOTES, ""));
  if (!value) {
    return ["", null];
  }
  if (kind === "email") {
    const written = value;
    const angle = ANGLE.exec(value);
    if (angle) {
      value = trim(angle[1]);
    }
    if (MAILTO.test(value)) {
      value = trim(value.slice("mailto:".length).split("?")[0]);
    }
    if (!value) { // "Jane <>", "mailto:": no address at all
      return [written, "not_email"];
    }
  }
  return [value, problem(value, kind)];
}

/**
 * @param {string} value
 * @param {Kind} kind
 * @returns {string | null}
 */
export function problem(value, kind) {
  if (BLANK.test(value)) {
    return "spaces";
  }
  if ([...value].length > LIMITS[kind]) { // characters, as Python counts them
    return "too_long";
  }
  if (kind === "email" && !EMAIL.test(value)) {
    return "not_email";
  }
  if (kind === "accountId" && !ACCOUNT_ID.test(value)) {
    return "not_account_id";
  }
  return null;
}

// {entries, invalid: [{entry, reason, line}], written, header, repeated}: the entries of pasted
// text; written holds both valid and invalid ones in the order first seen.
/**
 * @typedef {object} Parsed
 * @property {string[]} entries the valid entries, each once
 * @property {{entry: string, reason: string, line: number}[]} invalid
 * @property {string[]} written
 * @property {string | null} header
 * @property {number} repeated
 */
/**
 * @param {string} text
 * @param {Kind} kind
 * @returns {Parsed}
 */
export function parse(text, kind) {
  const lines = String(text ?? "").split(LINES);
  const first = lines.findIndex((line) => trim(line));
  /** @type {Parsed} */
  const found = { entries: [], invalid: [], written: [], header: null, repeated: 0 };
  /** @type {number | null} */
  let column = null;
  let start = 0;
  if (first >= 0) {
    const cells = csvCells(lines[first]);
    const named = cells.findIndex((c) => HEADERS[kind].test(c));
    if (named >= 0) {
      found.header = cells[named];
      start = first + 1;
      column = cells.length > 1 ? named : null;
    }
  }
  const seen = new Set();
  for (let number = start; number < lines.length; number += 1) {
    const line = lines[number];
    let pieces;
    if (column !== null) {
      const cells = csvCells(line);
      pieces = column < cells.length ? [cells[column]] : [];
    } else {
      pieces = splitLine(line);
    }
    for (const piece of pieces) {
      const [value, reason] = normalise(piece, kind);
      if (!value) {
        continue;
      }
      const shown = reason === null ? value : trim(piece);
      const k = (reason === null ? "" : "\u0000") + key(shown, kind);
      if (seen.has(k)) {
        found.repeated += 1;
        continue;
      }
      seen.add(k);
      found.written.push(shown);
      if (reason === null) {
        found.entries.push(value);
      } else {
        found.invalid.push({ entry: shown, reason, line: number + 1 });
      }
    }
  }
  return found;
}

// line cut at "," and ";" outside double quotes (the quotes are kept).
/**
 * @param {string} line
 * @returns {string[]}
 */
export function splitLine(line) {
  const pieces = [];
  let current = "";
  let quoted = false;
  for (const c of line) {
    if (c === '"') {
      quoted = !quoted;
    }
    if ((c === "," || c === ";") && !quoted) {
      pieces.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  pieces.push(current);
  return pieces;
}

// line as CSV cells: cut at "," ";" or a tab outside double quotes, trimmed, quotes taken off.
/**
 * @param {string} line
 * @returns {string[]}
 */
export function csvCells(line) {
  const cells = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        current += '"';
        i += 1;
      } else if (c === '"') {
        quoted = false;
      } else {
        current += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === "," || c === ";" || c === "\t") {
      cells.push(trim(current));
      current = "";
    } else {
      current += c;
    }
  }
  cells.push(trim(current));
  return cells;
}
