// @ts-check
// Lists read a page at a time from the backend (jobs, audit entries).
import { call } from "./api.js";
import { announce, button, clear, h, message, spinner } from "./dom.js";

// A newest-first list loaded a page at a time: load(true) starts over, load(false) ("Older")
// follows the cursor `next`; onPage receives every row so far and the cursor. Each load has a
// sequence number and only the latest one's answer is used, so two at once (a double-clicked
// Refresh, Refresh while "Older" loads) never add the same rows twice. A failed "Older" keeps the
// rows: its error goes in `note` (to be placed under the table), with "Try again". `filters()` adds
// to every call's payload; `onError(err)` may take over a failed first page (true: handled).
/**
 * @template R
 * @param {object} options
 * @param {HTMLElement} options.list where the table (or the first page's error) goes
 * @param {HTMLButtonElement} options.older the "Older" button
 * @param {string} options.resolver
 * @param {string} options.key the answer's list of rows
 * @param {number} options.pageSize
 * @param {string} options.loading
 * @param {string} options.olderWords
 * @param {(rows: number) => string} options.listed
 * @param {() => void} options.onReset
 * @param {(rows: R[], next: string | null) => void} options.onPage
 * @param {() => Record<string, string>} [options.filters]
 * @param {(err: unknown) => boolean} [options.onError]
 * @returns {{load(reset: boolean): Promise<void>, note: HTMLDivElement}}
 */
export function cursorPages({ list, older, resolver, key, pageSize, loading, olderWords, listed, onReset, onPage, filters = () => ({}), onError = () => false }) {
  /** @type {R[]} */
  let rows = [];
  /** @type {string | null} */
  let next = null;
  let seq = 0;
  const note = h("div", { class: "page-note" });

  /** @param {boolean} reset */
  async function load(reset) {
    if (!reset && !next) {
      return;
    }
    const mine = ++seq;
    /** @type {Record<string, unknown>} */
    const payload = { limit: pageSize, ...filters() };
    if (reset) {
      rows = [];
      next = null;
      onReset();
      clear(note);
      clear(list, spinner(loading));
    } else {
      payload.before = next;
      clear(note, spinner(`Loading ${olderWords}…`));
    }
    older.disabled = true;
    list.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await call(resolver, payload);
    } catch (err) {
      if (mine !== seq) {
        return;
      }
      list.setAttribute("aria-busy", "false");
      older.disabled = false;
      if (reset) {
        if (!onError(err)) {
          clear(list, message("error", err.message));
        }
      } else {
        const lost = !document.activeElement || document.activeElement === document.body
          || document.activeElement === older || list.contains(document.activeElement);
        const retry = button("Try again", () => {
          const region = list.querySelector(".table-scroll");
          if (region instanceof HTMLElement) {
            region.focus(); // this button goes away while the page loads
          }
          load(false);
        }, { "aria-label": `Try again to load ${olderWords}` });
        older.hidden = true;
        clear(note, message("error", `The ${olderWords} could not be loaded. ${err.message}`, retry));
        if (lost) {
          retry.focus();
        }
      }
      announce(err.message);
      return;
    }
    if (mine !== seq) {
      return;
    }
    list.setAttribute("aria-busy", "false");
    older.disabled = false;
    rows = rows.concat(answer[key] || []);
    next = answer.next || null;
    clear(note);
    onPage(rows, next);
    announce(listed(rows.length));
  }

  return { load, note };
}

