// @ts-check
// The input form the lookup, access and invite tools share: paste a list or load a CSV file. The
// list is read by the pasted-list rules (entries.js, as the backend reads it): each entry that is not
// valid is listed under the field as soon as it is there, with a way to remove them all. Invalid
// entries go to the backend as written, which answers them as invalid (emails) or not found (ids)
// without sending them to Confluence.
import { MAX_ENTRIES } from "./api.js";
import { entriesFromCsv } from "./csv.js";
import { announce, append, button, count, h, icon, nextId, plural } from "./dom.js";
import { HEADERS, LIMITS, normalise, parse } from "./entries.js";

const MAX_FILE_BYTES = 5 * 1024 * 1024; // 10,000 entries are far less than this
const SHOWN_PROBLEMS = 8; // invalid entries listed by name; the rest are counted

// Why an entry is not valid, in words, for each kind of list, and what becomes of it.
/** @type {Record<import("./entries.js").Kind, Record<string, string>>} */
const REASONS = {
  email: {
    spaces: "has a space inside (an email address has none)",
    not_email: "is not an email address",
    too_long: "is longer than 320 characters",
  },
  accountId: {
    spaces: "has a space inside (an account id has none)",
    not_account_id: "is not an account id (only letters, digits and : - _ .)",
    too_long: "is longer than 128 characters",
  },
};
const FATE = { email: "shows as Invalid email in the results", accountId: "shows as Not found in the results" };

// kind is "email" or "accountId"; onSubmit gets the distinct entries (valid ones as read, invalid
// ones as written). onRefused() runs when the form refuses a list itself (empty, over 10,000), so
// the page can drop results that belong to an earlier list.
// cost(n), when given, words what sending n entries will cost in Confluence's points; it shows under
// the count before anything is sent. `note` (a node) goes beside the submit button.
/**
 * @typedef {object} EntryForm
 * @property {HTMLFormElement} el
 * @property {HTMLTextAreaElement} area
 * @property {HTMLButtonElement} submit
 * @property {(text: string) => void} setValue
 * @property {(on: boolean) => void} setPrimary
 * @property {(...nodes: import("./dom.js").Children[]) => void} append
 */
/**
 * @param {object} options
 * @param {string} options.label
 * @param {string} options.hint
 * @param {string} options.placeholder
 * @param {import("./entries.js").Kind} options.kind
 * @param {string} options.noun
 * @param {string} options.submitLabel
 * @param {(entries: string[]) => Promise<unknown>} options.onSubmit
 * @param {() => void} [options.onRefused]
 * @param {((n: number) => string) | null} [options.cost]
 * @param {Node | null} [options.note]
 * @returns {EntryForm}
 */
export function entryForm({ label, hint, placeholder, kind, noun, submitLabel, onSubmit, onRefused = () => {}, cost = null, note = null }) {
  const areaId = nextId("entries");
  const hintId = nextId("hint");
  const countId = nextId("count");
  const problemsId = nextId("problems");
  const fileId = nextId("file");
  const area = h("textarea", {
    id: areaId,
    rows: 6,
    spellcheck: "false",
    autocomplete: "off",
    placeholder,
    "aria-describedby": `${hintId} ${countId} ${problemsId}`,
  });
  const counter = h("p", { id: countId, class: "field-count", "aria-live": "off" });
  const costNote = h("p", { class: "field-cost", hidden: true });
  const problems = h("div", { id: problemsId, class: "entry-problems", hidden: true });
  // The file input is in the form (a browser opens a picker only for an input in the page) but out of
  // sight and out of the tab order: the "Load CSV file" button is what people see, focus and press.
  const file = h("input", {
    id: fileId,
    type: "file",
    accept: ".csv,.txt,text/csv,text/plain",
    class: "visually-hidden",
    tabindex: "-1",
    "aria-hidden": "true",
  });
  const fileButton = button("Load CSV file", () => file.click(), { class: "btn btn-default file-btn", "aria-describedby": hintId });
  const submit = h("button", { type: "submit", class: "btn btn-primary", text: submitLabel });
  const error = h("p", { class: "field-error", role: "alert" });
  const actions = h("div", { class: "actions" }, submit, fileButton);
  const form = h(
    "form",
    { class: "entry-form", novalidate: true, "data-entry-kind": kind },
    h("label", { for: areaId, class: "field-label", text: label }),
    h("p", { id: hintId, class: "field-hint", text: hint }),
    area,
    counter,
    costNote,
    problems,
    error,
    actions,
    note,
    file,
  );

  let pending = 0;
  function refresh() {
    const found = parse(area.value, kind);
    const unique = found.entries.length;
    const extra = [
      found.invalid.length ? `${count(found.invalid.length)} not valid` : "",
      found.repeated ? `${count(found.repeated)} repeated, sent once` : "",
    ].filter(Boolean);
    const counted = unique || extra.length ? `${plural(unique, noun)}${extra.length ? ` (${extra.join("; ")})` : ""}` : "";
    counter.textContent = [
      counted,
      found.header ? `${counted ? ". " : ""}The first line, “${found.header}”, is read as a column header and not sent.` : "",
    ].join("");
    costNote.hidden = !(cost && unique);
    costNote.textContent = cost && unique ? cost(unique) : "";
    showProblems(found);
    if (found.invalid.length) {
      area.setAttribute("aria-invalid", "true");
    } else {
      area.removeAttribute("aria-invalid");
    }
    if (found.written.length <= MAX_ENTRIES) {
      error.textContent = "";
    }
    return found;
  }

  function refreshSoon() {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(refresh);
  }

  // Each invalid entry by line, why, and one action that removes them all (the list is then
  // written back as the entries that will be sent, one a line).
  /** @param {import("./entries.js").Parsed} found */
  function showProblems(found) {
    const bad = found.invalid;
    problems.hidden = bad.length === 0;
    if (!bad.length) {
      problems.replaceChildren();
      return;
    }
    const words = REASONS[kind];
    const items = bad.slice(0, SHOWN_PROBLEMS).map((p) => h("li", {},
      h("span", { class: "entry-line", text: `Line ${count(p.line)}: ` }),
      h("span", { class: "entry-bad", text: `“${p.entry.replace(/[\t\n\r]/g, " ")}”` }),
      ` ${words[p.reason] || "is not valid"}.`));
    const more = bad.length > SHOWN_PROBLEMS ? h("li", { text: `… and ${plural(bad.length - SHOWN_PROBLEMS, "more")}.` }) : null;
    problems.replaceChildren(
      icon("error", "icon icon-small entry-problems-icon"),
      h("div", { class: "entry-problems-body" },
        h("p", { class: "entry-problems-title", text: bad.length === 1
          ? `1 entry is not valid. It is not sent to Confluence and ${FATE[kind]}: fix it in the list, or remove it.`
          : `${count(bad.length)} entries are not valid. They are not sent to Confluence and ${FATE[kind].replace("shows", "show")}: fix them in the list, or remove them.` }),
        h("ul", {}, items, more),
        h("div", { class: "actions" },
          button(bad.length === 1 ? "Remove the invalid entry" : `Remove the ${count(bad.length)} invalid entries`, () => {
            const kept = parse(area.value, kind).entries;
            area.value = kept.join("\n");
            refresh();
            announce(`Removed ${plural(bad.length, "invalid entry", "invalid entries")}; ${plural(kept.length, noun)} left.`);
            area.focus();
          }))));
  }

  area.addEventListener("input", refreshSoon);
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    file.value = ""; // choosing the same file again is a change too
    if (chosen) {
      await load(chosen);
    }
  });

  // Fills the text area from a CSV or text file: the column whose header names the entries, else
  // every cell (entriesFromCsv), each read as one entry (Name <addr> gives addr). A file that cannot
  // be read, or holds no entries, is said in words.
  /** @param {File} chosen */
  async function load(chosen) {
    /** @param {string} text */
    const fail = (text) => {
      error.textContent = text; // role=alert: read out at once
      fileButton.focus();
    };
    if (chosen.size > MAX_FILE_BYTES) {
      fail(`${chosen.name} is too large to load (at most 5 MB). Save just the ${noun}s as a CSV file.`);
      return;
    }
    let text;
    try {
      text = decodeText(await chosen.arrayBuffer());
    } catch {
      fail(`${chosen.name} could not be read. Choose a CSV or text file.`);
      return;
    }
    if (text.includes("\u0000")) {
      fail(`${chosen.name} is not a CSV or text file. Save the spreadsheet as CSV first.`);
      return;
    }
    const found = entriesFromCsv(text, HEADERS[kind]);
    if (!found.length) {
      fail(text.trim() ? `No ${noun}s found in ${chosen.name}.` : `${chosen.name} is empty.`);
      return;
    }
    error.textContent = "";
    area.value = found.map(asLine).join("\n");
    refresh();
    announce(`Loaded ${plural(found.length, "entry", "entries")} from ${chosen.name}.`);
    area.focus();
  }

  // A cell as a line of the text area that reads back as the same one entry: a valid one as the
  // rules read it, an invalid one as written (in quotes when it holds a separator).
  /** @param {string} cell */
  function asLine(cell) {
    const [value, reason] = normalise(cell, kind);
    if (reason === null) {
      return value;
    }
    return /[,;"]/.test(cell) ? `"${cell.replaceAll('"', "")}"` : cell;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    cancelAnimationFrame(pending);
    const found = refresh();
    const list = found.written;
    /** @param {string} text */
    const refuse = (text) => {
      error.textContent = text;
      area.focus();
      onRefused();
    };
    if (!list.length) {
      refuse(`Enter at least one ${noun}.`);
      return;
    }
    const tooLong = found.invalid.filter((i) => i.reason === "too_long");
    if (tooLong.length) { // Confluence could take none of them: the backend refuses the whole list
      refuse(`${plural(tooLong.length, "entry is", "entries are")} too long to send (over ${count(LIMITS[kind])} characters). Remove ${tooLong.length === 1 ? "it" : "them"} and send again.`);
      return;
    }
    if (list.length > MAX_ENTRIES) {
      refuse(`At most 10,000 entries at once (this list has ${count(list.length)}). Split the list and send the rest afterwards.`);
      return;
    }
    error.textContent = "";
    submit.disabled = true;
    try {
      await onSubmit(list);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    el: form,
    area,
    submit,
    setValue(text) {
      area.value = text;
      error.textContent = "";
      refresh();
    },
    // The page's one primary action is elsewhere (a confirm bar): the submit button steps back.
    setPrimary(on) {
      submit.className = on ? "btn btn-primary" : "btn btn-default";
    },
    append(...nodes) {
      append(form, nodes);
    },
  };
}

// UTF-8 unless the file starts with a UTF-16 byte order mark (spreadsheets' "Unicode text").
/** @param {ArrayBuffer} buffer */
function decodeText(buffer) {
  const bytes = new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength));
  const encoding = bytes[0] === 0xff && bytes[1] === 0xfe ? "utf-16le" : bytes[0] === 0xfe && bytes[1] === 0xff ? "utf-16be" : "utf-8";
  return new TextDecoder(encoding).decode(buffer);
}
