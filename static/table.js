// @ts-check
// A paged, sortable, filterable table for up to 10,000 rows, and fit() for values that must never
// break inside (an address, a name, an id).

import { asciiLower } from "./csv.js";
import { announce, button, count, h, nextId } from "./dom.js";

// A value on one line, cut short with an ellipsis when its column is narrow, whole on hover (title)
// and in copies and CSV files (which take the data, not the page). kind: email | name | id; the
// widest it may grow is its share of the panel by the table's columns (styles.css .fit), so a table
// still fits 1,024 px.
/**
 * @param {unknown} text
 * @param {"email" | "name" | "id"} kind
 * @param {string} [extraClass]
 */
export function fit(text, kind, extraClass = "") {
  const value = String(text ?? "");
  return h("span", { class: `fit fit-${kind}${extraClass ? ` ${extraClass}` : ""}`, title: value || null, text: value });
}

// A table rendering one page of `rows` at a time (pageSize rows), so 10,000 rows stay responsive.
// columns: [{label, cell(row) -> Node|string, className?, sort?(row) -> string|number, text?}]: a
// column with `sort` has a header button that sorts ascending, then descending (aria-sort says
// which). A column with `text(row) -> string` is shown only while some row has text in it (a Detail
// column empty on every row takes no room).
// `search(row) -> string` adds a filter box once there are more than `searchFrom` rows.
// `rowAttrs(row)` adds attributes to a row (a class, data-*). `empty` is a string or a Node.
// The returned element has update(rows), which swaps in new rows (e.g. a job's items while it runs)
// and stays on the same page, and the same sort and filter.
/**
 * @template R
 * @typedef {object} Column one column of pagedTable, for rows of type R
 * @property {string} label
 * @property {(row: R) => import("./dom.js").Children} cell
 * @property {string} [className]
 * @property {string} [headClass]
 * @property {(row: R) => string | number} [sort]
 * @property {(row: R) => unknown} [text]
 */
/**
 * @template R
 * @typedef {HTMLDivElement & {update(rows: R[]): void}} PagedTable
 */
/**
 * @template R
 * @param {object} options
 * @param {string} options.caption
 * @param {Column<R>[]} options.columns
 * @param {R[]} options.rows
 * @param {number} [options.pageSize]
 * @param {import("./dom.js").Children} [options.empty]
 * @param {((row: R) => string) | null} [options.search]
 * @param {number} [options.searchFrom]
 * @param {((row: R) => import("./dom.js").Attrs) | null} [options.rowAttrs]
 * @returns {PagedTable<R>}
 */
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
  table.style.setProperty("--fit-cols", String(columns.length)); // how wide fit() values may grow
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

  /** @param {number} i */
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
    const key = sortBy >= 0 ? columns[sortBy].sort : undefined;
    if (key) {
      const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
      out = out.map((r, i) => ({ k: key(r), i, r })).sort((a, b) => {
        const order = typeof a.k === "number" && typeof b.k === "number" ? a.k - b.k : collator.compare(String(a.k ?? ""), String(b.k ?? ""));
        return order * sortDir || a.i - b.i;
      }).map((x) => x.r);
    }
    return out;
  }

  /** @param {number} n */
  function show(n) {
    shown = visible();
    pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.max(0, Math.min(pages - 1, n));
    const start = page * pageSize;
    const slice = shown.slice(start, start + pageSize);
    const used = columns.map(({ text }) => !text || rows.some((r) => String(text(r) || "") !== ""));
    heads.forEach((th, i) => { th.hidden = !used[i]; });
    const frag = document.createDocumentFragment();
    for (const row of slice) {
      frag.append(h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c, i) => (used[i] ? h("td", { class: c.className }, c.cell(row)) : null))));
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

  const paged = Object.assign(wrap, {
    /** @param {R[]} newRows */
    update(newRows) {
      rows = newRows;
      show(page);
    },
  });
  show(0);
  return paged;
}
