// The input form the lookup, access and invite tools share: paste a list or load a CSV file.
import { MAX_ENTRIES } from "./api.js";
import { announce, append, count, distinct, entriesFromCsv, h, nextId, parseList, plural } from "./dom.js";

export function entryForm({ label, hint, placeholder, header, caseless = false, noun, submitLabel, onSubmit }) {
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
  const file = h("input", { id: fileId, type: "file", accept: ".csv,.txt,text/csv,text/plain", class: "visually-hidden" });
  const fileLabel = h("label", { for: fileId, class: "btn btn-default file-btn", text: "Load CSV file" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", text: submitLabel });
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h(
    "form",
    { class: "entry-form", novalidate: true },
    h("label", { for: areaId, class: "field-label", text: label }),
    h("p", { id: hintId, class: "field-hint", text: hint }),
    area,
    counter,
    error,
    h("div", { class: "actions" }, submit, fileLabel),
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
      if (unique <= MAX_ENTRIES) {
        error.textContent = "";
      }
    });
  }

  area.addEventListener("input", refreshCount);
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) {
      return;
    }
    const text = await chosen.text();
    const found = entriesFromCsv(text, header);
    area.value = found.join("\n");
    file.value = "";
    refreshCount();
    announce(`Loaded ${plural(found.length, "entry", "entries")} from ${chosen.name}.`);
    area.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const list = entries();
    if (!list.length) {
      error.textContent = `Enter at least one ${noun}.`;
      area.focus();
      return;
    }
    if (list.length > MAX_ENTRIES) {
      error.textContent = `At most 10,000 entries at once (this list has ${count(list.length)}).`;
      area.focus();
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
      refreshCount();
    },
    append(...nodes) {
      append(form, nodes);
    },
  };
}
