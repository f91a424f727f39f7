// Small DOM helpers. Text always goes in through textContent / text nodes, never innerHTML.

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

// A message box: tone is info | success | warning | error.
export function message(tone, text, ...extra) {
  const role = tone === "error" ? "alert" : null;
  return h("div", { class: `msg msg-${tone}`, role }, h("p", { text }), extra);
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

export function distinct(entries, caseless = false) {
  const seen = new Set();
  const out = [];
  for (const entry of entries) {
    const key = caseless ? entry.toLowerCase() : entry;
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

// A value a spreadsheet would run as a formula (= + - @, or a tab or CR in front) gets a leading '.
// Every export and every copied list goes through this, so a pasted id or email is never run.
export function formulaSafe(value) {
  const text = value === undefined || value === null ? "" : String(value);
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

function csvCell(value) {
  const text = formulaSafe(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
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
  announce(`Downloaded ${filename}.`);
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
  announce(copied ? `${what}.` : "Could not copy: the browser did not allow access to the clipboard.");
  flash(trigger, copied ? "Copied" : "Could not copy");
  return copied;
}

// Shows `word` on the button that was pressed for a moment, for sighted users (the live region
// tells screen readers); its accessible name stays what it was.
function flash(button, word) {
  if (!(button instanceof HTMLButtonElement) || button.dataset.flashing) {
    return;
  }
  const label = button.textContent;
  button.dataset.flashing = "yes";
  if (!button.hasAttribute("aria-label")) {
    button.setAttribute("aria-label", label);
    button.dataset.flashLabel = "yes";
  }
  button.textContent = word;
  setTimeout(() => {
    button.textContent = label;
    delete button.dataset.flashing;
    if (button.dataset.flashLabel) {
      button.removeAttribute("aria-label");
      delete button.dataset.flashLabel;
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
// columns: [{label, cell(row) -> Node|string, className?}]. The returned element has update(rows),
// which swaps in new rows (e.g. a job's items while it runs) and stays on the same page.
export function pagedTable({ caption, columns, rows, pageSize = 100, empty = "Nothing to show." }) {
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "data" },
    h("caption", { class: "visually-hidden", text: caption }),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.className === "num" ? "num" : null, text: c.label })))),
    tbody,
  );
  const scroll = h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption }, table);
  const emptyNote = h("p", { class: "empty", text: empty });
  const info = h("span", { class: "pager-info" });
  const prev = button("Previous", () => show(page - 1), { "aria-label": `Previous page of ${caption.toLowerCase()}` });
  const next = button("Next", () => show(page + 1), { "aria-label": `Next page of ${caption.toLowerCase()}` });
  const pager = h("div", { class: "pager" }, prev, info, next);
  const wrap = h("div", { class: "table-wrap" }, emptyNote, scroll, pager);
  let page = 0;
  let pages = 1;

  function show(n) {
    pages = Math.max(1, Math.ceil(rows.length / pageSize));
    page = Math.max(0, Math.min(pages - 1, n));
    const start = page * pageSize;
    const slice = rows.slice(start, start + pageSize);
    const frag = document.createDocumentFragment();
    for (const row of slice) {
      frag.append(h("tr", {}, columns.map((c) => h("td", { class: c.className }, c.cell(row)))));
    }
    tbody.replaceChildren(frag);
    info.textContent = `Rows ${count(start + 1)}–${count(start + slice.length)} of ${count(rows.length)}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    emptyNote.hidden = rows.length > 0;
    scroll.hidden = rows.length === 0;
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
