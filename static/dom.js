// Small DOM helpers. Text always goes in through textContent / text nodes, never innerHTML.

import { showFlag } from "./bridge.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === "class") {
      el.className = value;
    } else if (name === "text") {
      el.textContent = String(value);
    } else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

const nf = new Intl.NumberFormat("en");
export function count(n) {
  return nf.format(n);
}

export function plural(n, one, many) {
  return `${count(n)} ${n === 1 ? one : many || `${one}s`}`;
}

// The one polite live region: what just happened, for screen readers.
export function announce(text) {
  const region = document.getElementById("status");
  if (!region) {
    return;
  }
  region.textContent = "";
  // A new text node after a tick makes repeated identical messages announce again.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

export function formatDate(value) {
  if (!value) {
    return "";
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    return String(value);
  }
  return date.toLocaleString("en", { dateStyle: "medium", timeStyle: "short" });
}

export function lozenge(text, tone = "default") {
  return h("span", { class: `lozenge lozenge-${tone}`, text });
}

export function button(label, onClick, { kind = "default", ...attrs } = {}) {
  return h("button", { type: "button", class: `btn btn-${kind}`, onclick: onClick, ...attrs }, label);
}

// ---------------------------------------------------------------- icons, section messages, flags

const SVG = "http://www.w3.org/2000/svg";
// 24 px glyphs in the shape of the Atlassian Design System's status icons, filled with currentColor.
const ICON_PATHS = {
  info: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-9.5a1 1 0 0 0-1 1V16a1 1 0 1 0 2 0v-4.5a1 1 0 0 0-1-1ZM12 9a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 9Z",
  success: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm3.7-10.7a1 1 0 0 0-1.4 0L11 12.6l-1.3-1.3a1 1 0 1 0-1.4 1.4l2 2a1 1 0 0 0 1.4 0l4-4a1 1 0 0 0 0-1.4Z",
  warning: "M13.5 4.9 20.6 17.5A1.7 1.7 0 0 1 19.1 20H4.9a1.7 1.7 0 0 1-1.5-2.5l7.1-12.6a1.7 1.7 0 0 1 3 0ZM12 8a1 1 0 0 0-1 1v4.5a1 1 0 1 0 2 0V9a1 1 0 0 0-1-1Zm0 9.5A1.25 1.25 0 1 0 12 15a1.25 1.25 0 0 0 0 2.5Z",
  error: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-12a1 1 0 0 0-1 1v4a1 1 0 1 0 2 0V9a1 1 0 0 0-1-1Zm0 9a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 17Z",
  discovery: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-13a1 1 0 0 0-1 1v5a1 1 0 1 0 2 0V8a1 1 0 0 0-1-1Zm0 10a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 17Z",
  close: "M12 10.6 7.8 6.4a1 1 0 0 0-1.4 1.4l4.2 4.2-4.2 4.2a1 1 0 1 0 1.4 1.4l4.2-4.2 4.2 4.2a1 1 0 0 0 1.4-1.4L13.4 12l4.2-4.2a1 1 0 0 0-1.4-1.4L12 10.6Z",
};

export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "24");
  svg.setAttribute("height", "24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", className);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICON_PATHS[name] || ICON_PATHS.info);
  path.setAttribute("fill", "currentColor");
  path.setAttribute("fill-rule", "evenodd");
  svg.append(path);
  return svg;
}

// A section message (ADS): an icon, an optional title, the text, then any actions.
// tone is info | success | warning | error | discovery. message(tone, text, ...extra) or
// message(tone, {title, text}, ...extra). Errors are role=alert (read out at once).
export function message(tone, content, ...extra) {
  const role = tone === "error" ? "alert" : null;
  const { title, text } = typeof content === "object" && content !== null ? content : { title: null, text: content };
  return h("div", { class: `msg msg-${tone}`, role },
    icon(tone === "error" ? "error" : tone, `icon msg-icon msg-icon-${tone}`),
    h("div", { class: "msg-body" },
      title ? h("h3", { class: "msg-title", text: title }) : null,
      text ? h("p", { text }) : null,
      extra));
}

// An empty state (ADS): a heading, what it means, and the next action (a button or nothing).
export function emptyState(title, text, action = null) {
  return h("div", { class: "empty-state" },
    h("h3", { class: "empty-title", text: title }),
    text ? h("p", { text }) : null,
    action ? h("div", { class: "actions" }, action) : null);
}

// Flags (ADS): short notes in the bottom corner of the page that go away by themselves (success and
// info after 8 s) or stay until dismissed (warnings and errors). actions: [{label, onClick}]; an
// action closes its flag, then runs.
// Inside Confluence the host page shows them (@forge/bridge's showFlag): the panel's frame grows with
// its content, so a flag fixed to the frame's bottom could be far below what the admin sees. The
// host's flag is an alert, read out there. Without a bridge (the backend's bare page) the panel shows
// the flag in its own page and the live region reads it out.
export function flag(tone, title, text = "", actions = []) {
  const id = `access-desk-flag-${flagSeed}-${nextId("n")}`;
  let shown = null;
  const run = (action) => () => {
    shown?.close().catch(() => {}); // already gone (dismissed, auto-dismissed): nothing to close
    action.onClick();
  };
  shown = showFlag({
    id,
    title,
    description: text || undefined,
    type: tone,
    isAutoDismiss: tone === "success" || tone === "info",
    actions: actions.map((a) => ({ text: a.label, onClick: run(a) })),
  });
  if (!shown) {
    pageFlag(tone, title, text, actions);
  }
}

// Flag ids stay unique on the host page across reloads of the panel (the host keeps its flags).
const flagSeed = Math.random().toString(36).slice(2, 10);

function pageFlag(tone, title, text, actions) {
  let stack = document.getElementById("flags");
  if (!stack) {
    stack = h("div", { id: "flags", class: "flags" });
    document.body.append(stack);
  }
  const dismiss = () => {
    el.remove();
  };
  const el = h("div", { class: `flag flag-${tone}`, role: "group", "aria-label": title },
    icon(tone === "error" ? "error" : tone, `icon flag-icon msg-icon-${tone}`),
    h("div", { class: "flag-body" },
      h("p", { class: "flag-title", text: title }),
      text ? h("p", { class: "flag-text", text }) : null,
      actions.length
        ? h("div", { class: "flag-actions" }, actions.map((a) => h("button", {
            type: "button", class: "link-btn", text: a.label, onclick: () => { dismiss(); a.onClick(); },
          })))
        : null),
    h("button", { type: "button", class: "icon-btn flag-close", "aria-label": `Dismiss: ${title}`, onclick: dismiss }, icon("close", "icon icon-small")));
  stack.prepend(el);
  while (stack.children.length > 3) {
    stack.lastChild.remove();
  }
  if (tone === "success" || tone === "info") {
    setTimeout(dismiss, 8000);
  }
  announce(text ? `${title} ${text}` : title);
}

export function spinner(label = "Loading…") {
  return h("p", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), label);
}

export async function busy(region, work) {
  region.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    region.setAttribute("aria-busy", "false");
  }
}

// ---------------------------------------------------------------- lists and CSV

// Entries separated by commas, whitespace, new lines or semicolons; blanks dropped, order kept.
export function parseList(text) {
  return String(text || "")
    .split(/[\s,;]+/)
    .map((s) => s.trim().replace(/^["']+|["']+$/g, ""))
    .filter(Boolean);
}

// Lower-cases ASCII letters only (A-Z), as the backend compares emails: "straße@" is not "strasse@"
// and the Kelvin sign (U+212A) is not "K", so neither pair collapses into one entry.
export function asciiLower(text) {
  return String(text).replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

export function distinct(entries, caseless = false) {
  const seen = new Set();
  const out = [];
  for (const entry of entries) {
    const key = caseless ? asciiLower(entry) : entry;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(entry);
    }
  }
  return out;
}

export function parseCsv(text) {
  const rows = [];
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
export function formulaSafe(value) {
  const text = value === undefined || value === null ? "" : String(value);
  return text.replace(/^[\t\r]/, "'$&").replace(FORMULA_START, "$1$2'$3");
}

// Every cell quoted, whatever it holds: a reader splitting on ; or a tab keeps it whole.
function csvCell(value) {
  return `"${formulaSafe(value).replaceAll('"', '""')}"`;
}

// One value a line, for copying a list (the same formula guard as toCsv).
export function toLines(values) {
  return values.map(formulaSafe).join("\n");
}

export function toCsv(header, rows) {
  return [header, ...rows].map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

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
    if (before && typeof before.focus === "function") {
      before.focus();
    }
  }
}

// ---------------------------------------------------------------- tables

// A table rendering one page of `rows` at a time (pageSize rows), so 10,000 rows stay responsive.
// columns: [{label, cell(row) -> Node|string, className?, sort?(row) -> string|number}]: a column
// with `sort` has a header button that sorts ascending, then descending (aria-sort says which).
// `search(row) -> string` adds a filter box once there are more than `searchFrom` rows.
// `rowAttrs(row)` adds attributes to a row (a class, data-*). `empty` is a string or a Node.
// The returned element has update(rows), which swaps in new rows (e.g. a job's items while it runs)
// and stays on the same page, and the same sort and filter.
export function pagedTable({ caption, columns, rows, pageSize = 100, empty = "Nothing to show.", search = null, searchFrom = 20, rowAttrs = null }) {
  const tbody = h("tbody");
  let sortBy = -1;
  let sortDir = 1;
  const heads = columns.map((c, i) => {
    const th = h("th", { scope: "col", class: c.className === "num" ? "num" : c.headClass || null });
    if (c.sort) {
      th.setAttribute("aria-sort", "none");
      th.append(h("button", { type: "button", class: "sort-btn", onclick: () => sortOn(i) },
        c.label, h("span", { class: "sort-mark", "aria-hidden": "true" })));
    } else {
      th.textContent = c.label;
    }
    return th;
  });
  const table = h(
    "table",
    { class: "data" },
    h("caption", { class: "visually-hidden", text: caption }),
    h("thead", {}, h("tr", {}, heads)),
    tbody,
  );
  const scroll = h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption }, table);
  const emptyNote = typeof empty === "string" ? h("p", { class: "empty", text: empty }) : h("div", {}, empty);
  const noMatch = h("p", { class: "empty", text: "Nothing matches the filter." });
  const info = h("span", { class: "pager-info" });
  const prev = button("Previous", () => show(page - 1), { "aria-label": `Previous page of ${caption.toLowerCase()}` });
  const next = button("Next", () => show(page + 1), { "aria-label": `Next page of ${caption.toLowerCase()}` });
  const pager = h("div", { class: "pager" }, prev, info, next);
  const filterId = nextId("filter");
  const filterBox = h("input", { id: filterId, type: "search", class: "filter-box", placeholder: "Filter", autocomplete: "off", spellcheck: "false" });
  const filterField = h("div", { class: "inline-field table-filter" },
    h("label", { for: filterId, text: `Filter ${caption.toLowerCase()}` }), filterBox);
  const wrap = h("div", { class: "table-wrap" }, filterField, emptyNote, noMatch, scroll, pager);
  let page = 0;
  let pages = 1;
  let shown = rows;
  filterBox.addEventListener("input", () => show(0));

  function sortOn(i) {
    sortDir = sortBy === i ? -sortDir : 1;
    sortBy = i;
    heads.forEach((th, j) => {
      if (columns[j].sort) {
        th.setAttribute("aria-sort", j === i ? (sortDir > 0 ? "ascending" : "descending") : "none");
      }
    });
    show(0);
    announce(`Sorted by ${columns[i].label.toLowerCase()}, ${sortDir > 0 ? "ascending" : "descending"}.`);
  }

  function visible() {
    let out = rows;
    const needle = asciiLower(filterBox.value.trim());
    if (search && needle) {
      out = out.filter((r) => asciiLower(search(r)).includes(needle));
    }
    if (sortBy >= 0) {
      const key = columns[sortBy].sort;
      const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
      out = out.map((r, i) => [key(r), i, r]).sort((a, b) => {
        const order = typeof a[0] === "number" && typeof b[0] === "number" ? a[0] - b[0] : collator.compare(String(a[0] ?? ""), String(b[0] ?? ""));
        return order * sortDir || a[1] - b[1];
      }).map((x) => x[2]);
    }
    return out;
  }

  function show(n) {
    shown = visible();
    pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.max(0, Math.min(pages - 1, n));
    const start = page * pageSize;
    const slice = shown.slice(start, start + pageSize);
    const frag = document.createDocumentFragment();
    for (const row of slice) {
      frag.append(h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h("td", { class: c.className }, c.cell(row)))));
    }
    tbody.replaceChildren(frag);
    info.textContent = `Rows ${count(slice.length ? start + 1 : 0)}–${count(start + slice.length)} of ${count(shown.length)}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    filterField.hidden = !search || (rows.length <= searchFrom && !filterBox.value);
    emptyNote.hidden = rows.length > 0;
    noMatch.hidden = rows.length === 0 || shown.length > 0;
    scroll.hidden = shown.length === 0;
    pager.hidden = pages <= 1;
  }

  wrap.update = (newRows) => {
    rows = newRows;
    show(page);
  };
  show(0);
  return wrap;
}

// ---------------------------------------------------------------- avatars

const HUES = ["#0c66e4", "#6e5dc6", "#1f845a", "#a54800", "#ae2e24", "#206a83"];

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

function initialsAvatar(name, seed) {
  let hash = 0;
  for (const c of String(seed || name || "")) {
    hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  }
  const el = h("span", { class: "avatar avatar-initials", "aria-hidden": "true", text: initials(name) });
  el.style.backgroundColor = HUES[hash % HUES.length];
  return el;
}

// profilePicture.path may be relative to the site, which the panel cannot reach: initials then.
export function avatar(user) {
  const name = user.displayName || user.publicName || user.accountId;
  const path = user.profilePicture && user.profilePicture.path;
  const fallback = initialsAvatar(name, user.accountId);
  if (!path || !/^https?:\/\//i.test(path) || (user.profilePicture && user.profilePicture.isDefault)) {
    return fallback;
  }
  const img = h("img", { class: "avatar", src: path, alt: "", width: 24, height: 24, loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(fallback), { once: true });
  return img;
}
