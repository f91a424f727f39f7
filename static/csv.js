// @ts-check
// Lists in and out: cells of CSV files (pasted text is read by entries.js), CSV and line exports with
// the formula guard, downloads and the clipboard.

import { h } from "./dom.js";
import { flag } from "./flags.js";

// Lower-cases ASCII letters only (A-Z), as the backend compares emails: "straße@" is not "strasse@"
// and the Kelvin sign (U+212A) is not "K", so neither pair collapses into one entry.
/** @param {unknown} text */
export function asciiLower(text) {
  return String(text).replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/**
 * @param {string} text
 * @returns {string[][]}
 */
export function parseCsv(text) {
  const rows = [];
  /** @type {string[]} */
  let row = [];
  let cell = "";
  let quoted = false;
  const src = String(text || "").replace(/^\uFEFF/, "");
  for (let i = 0; i < src.length; i += 1) {
    const c = src[i];
    if (quoted) {
      if (c === '"' && src[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (c === '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === "," || c === ";" || c === "\t") {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && src[i + 1] === "\n") {
        i += 1;
      }
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else {
      cell += c;
    }
  }
  if (cell !== "" || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows.map((r) => r.map((c) => c.trim())).filter((r) => r.some(Boolean));
}

// Entries from a CSV file: the column whose header matches `header` when there is one, else every cell.
/**
 * @param {string} text
 * @param {RegExp} header
 * @returns {string[]}
 */
export function entriesFromCsv(text, header) {
  const rows = parseCsv(text);
  if (!rows.length) {
    return [];
  }
  const col = rows[0].findIndex((c) => header.test(c));
  if (col >= 0) {
    return rows.slice(1).map((r) => r[col] || "").filter(Boolean);
  }
  return rows.flat().filter(Boolean);
}

// A value a spreadsheet would run as a formula gets a ' in front: at its start (= + - @, or a tab or
// CR there) and after every separator a spreadsheet may split on (, ; tab CR LF |), so a cell such as
// "x;=1+1;" or "x<TAB>=cmd|' /C calc'!A0" cannot become a formula in a column of its own. Every export
// and every copied list goes through this, so a pasted id or email is never run.
const FORMULA_START = /(^|[,;\t\r\n|])(\s*)([=+\-@])/g;
/** @param {unknown} value */
export function formulaSafe(value) {
  const text = value === undefined || value === null ? "" : String(value);
  return text.replace(/^[\t\r]/, "'$&").replace(FORMULA_START, "$1$2'$3");
}

// Every cell quoted, whatever it holds: a reader splitting on ; or a tab keeps it whole.
/** @param {unknown} value */
function csvCell(value) {
  return `"${formulaSafe(value).replaceAll('"', '""')}"`;
}

// One value a line, for copying a list (the same formula guard as toCsv).
/** @param {unknown[]} values */
export function toLines(values) {
  return values.map(formulaSafe).join("\n");
}

/**
 * @param {unknown[]} header
 * @param {unknown[][]} rows
 */
export function toCsv(header, rows) {
  return [header, ...rows].map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

/**
 * @param {string} filename
 * @param {string} text
 * @param {string} [type]
 */
export function download(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const a = h("a", { href: url, download: filename, class: "visually-hidden" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  flag("success", `Downloaded ${filename}`);
}

// Copies text and says so, or says in words that it could not. Resolves to whether it was copied.
/**
 * @param {string} text
 * @param {string} [what]
 */
export async function copyText(text, what = "Copied") {
  const trigger = document.activeElement;
  let copied = false;
  try {
    if (!navigator.clipboard || typeof navigator.clipboard.writeText !== "function") {
      throw new Error("no clipboard API");
    }
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    copied = fallbackCopy(text);
  }
  if (copied) {
    flag("success", `${what}.`);
  } else {
    flag("error", "Could not copy", "The browser did not allow access to the clipboard. Use Download CSV instead.");
  }
  flash(trigger, copied ? "Copied" : "Could not copy");
  return copied;
}

// Shows `word` on the button that was pressed for a moment, for sighted users (the flag tells
// screen readers). Its accessible name keeps what it said with `word` in front ("Copy the
// URL" reads "Copied the URL"), so the visible text stays part of the name; then both come back.
/**
 * @param {Element | null} button
 * @param {string} word
 */
function flash(button, word) {
  if (!(button instanceof HTMLButtonElement) || button.dataset.flashing) {
    return;
  }
  const label = button.textContent;
  const name = button.getAttribute("aria-label");
  button.dataset.flashing = "yes";
  if (name) {
    button.setAttribute("aria-label", name.startsWith(label) ? word + name.slice(label.length) : `${word}: ${name}`);
  }
  button.textContent = word;
  setTimeout(() => {
    button.textContent = label;
    delete button.dataset.flashing;
    if (name) {
      button.setAttribute("aria-label", name);
    }
  }, 1500);
}

// The older way (execCommand), which reports false, or throws, when the browser refuses.
/** @param {string} text */
function fallbackCopy(text) {
  const before = document.activeElement;
  const area = h("textarea", { class: "visually-hidden", "aria-hidden": "true", tabindex: "-1", readonly: true });
  area.value = text;
  document.body.append(area);
  try {
    area.select();
    return document.execCommand("copy") === true;
  } catch {
    return false;
  } finally {
    area.remove();
    if (before instanceof HTMLElement || before instanceof SVGElement) {
      before.focus();
    }
  }
}
