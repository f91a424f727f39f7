// The input form the lookup, access and invite tools share: paste a list or load a CSV file.
import { MAX_ENTRIES } from "./api.js";
import { distinct, entriesFromCsv, parseList } from "./csv.js";
import { announce, append, button, count, h, nextId, plural } from "./dom.js";

const MAX_FILE_BYTES = 5 * 1024 * 1024; // 10,000 entries are far less than this

// onRefused() runs when the form refuses a list itself (empty, over 10,000), so the page can drop
// results that belong to an earlier list. cost(n), when given, words what sending n entries will cost
// in Confluence's points; it shows under the count before anything is sent.
export function entryForm({ label, hint, placeholder, header, caseless = false, noun, submitLabel, onSubmit, onRefused = () => {}, cost = null }) {
  const areaId = nextId("entries");
  const hintId = nextId("hint");
  const countId = nextId("count");
  const fileId = nextId("file");
  const area = h("textarea", {
    id: areaId,
    rows: 6,
    spellcheck: "false",
    autocomplete: "off",
    placeholder,
    "aria-describedby": `${hintId} ${countId}`,
  });
  const counter = h("p", { id: countId, class: "field-count", "aria-live": "off" });
  const costNote = h("p", { class: "field-cost", hidden: true });
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
  const form = h(
    "form",
    { class: "entry-form", novalidate: true },
    h("label", { for: areaId, class: "field-label", text: label }),
    h("p", { id: hintId, class: "field-hint", text: hint }),
    area,
    counter,
    costNote,
    error,
    h("div", { class: "actions" }, submit, fileButton),
    file,
  );

  function entries() {
    return distinct(parseList(area.value), caseless);
  }

  let pending = 0;
  function refreshCount() {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => {
      const all = parseList(area.value);
      const unique = distinct(all, caseless).length;
      const dupes = all.length - unique;
      counter.textContent = all.length
        ? `${plural(unique, noun)}${dupes ? ` (${count(dupes)} repeated, sent once)` : ""}`
        : "";
      costNote.hidden = !(cost && unique);
      costNote.textContent = cost && unique ? cost(unique) : "";
      if (unique <= MAX_ENTRIES) {
        error.textContent = "";
      }
    });
  }

  area.addEventListener("input", refreshCount);
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    file.value = ""; // choosing the same file again is a change too
    if (chosen) {
      await load(chosen);
    }
  });

  // Fills the text area from a CSV or text file: the column whose header names the entries, else
  // every cell (entriesFromCsv). A file that cannot be read, or holds no entries, is said in words.
  async function load(chosen) {
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
    const found = entriesFromCsv(text, header);
    if (!found.length) {
      fail(text.trim() ? `No ${noun}s found in ${chosen.name}.` : `${chosen.name} is empty.`);
      return;
    }
    error.textContent = "";
    area.value = found.join("\n");
    refreshCount();
    announce(`Loaded ${plural(found.length, "entry", "entries")} from ${chosen.name}.`);
    area.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const list = entries();
    if (!list.length) {
      error.textContent = `Enter at least one ${noun}.`;
      area.focus();
      onRefused();
      return;
    }
    if (list.length > MAX_ENTRIES) {
      error.textContent = `At most 10,000 entries at once (this list has ${count(list.length)}). Split the list and send the rest afterwards.`;
      area.focus();
      onRefused();
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
    setValue(text) {
      area.value = text;
      error.textContent = "";
      refreshCount();
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
function decodeText(buffer) {
  const bytes = new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength));
  const encoding = bytes[0] === 0xff && bytes[1] === 0xfe ? "utf-16le" : bytes[0] === 0xfe && bytes[1] === 0xff ? "utf-16be" : "utf-8";
  return new TextDecoder(encoding).decode(buffer);
}
