// @ts-check
// Small DOM helpers: elements, numbers and dates in words, icons, section messages, empty states.
// Text always goes in through textContent / text nodes, never innerHTML.

/**
 * What h(), append() and clear() take as children: nodes, text (numbers and strings), nothing
 * (null, undefined, false: left out) and lists of these, at any depth.
 * @typedef {Node | string | number | boolean | null | undefined | Children[]} Children
 */

/**
 * An element's attributes: `class`, `text` (its text), `on<event>` listeners, properties of the
 * element for values that are not strings (hidden, disabled, checked...), else attributes (a string,
 * or true for an empty one). null, undefined and false leave the attribute out.
 * @typedef {Record<string, unknown>} Attrs
 */

/**
 * A new element: h("button", {type: "button", onclick}, "Save").
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...Children} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === "class") {
      el.className = String(value);
    } else if (name === "text") {
      el.textContent = String(value);
    } else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), /** @type {EventListener} a function, as checked */ (value));
    } else if (name in el && typeof value !== "string") {
      // A property of the element by its name (hidden, disabled, checked...): any of them.
      /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (el))[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * @template {ParentNode} E
 * @param {E} el
 * @param {Children[]} children
 * @returns {E}
 */
export function append(el, children) {
  // Flattened as plain values: TypeScript cannot spell out the type of a flat() of any depth.
  for (const child of /** @type {unknown[]} */ (children).flat(Infinity)) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * Replaces what `el` holds with `children`.
 * @template {ParentNode} E
 * @param {E} el
 * @param {...Children} children
 * @returns {E}
 */
export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** @param {string} prefix */
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

const nf = new Intl.NumberFormat("en");
/** @param {number} n */
export function count(n) {
  return nf.format(n);
}

/**
 * "1 email", "3 emails"; `many` when the plural is not `one` + "s".
 * @param {number} n
 * @param {string} one
 * @param {string} [many]
 */
export function plural(n, one, many) {
  return `${count(n)} ${n === 1 ? one : many || `${one}s`}`;
}

// The one polite live region: what just happened, for screen readers.
/** @param {string} text */
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

// A date and time in the viewer's own locale and time zone ("29 Nov 2026, 14:05" or "Nov 29, 2026,
// 2:05 PM"), as Confluence shows dates.
/** @param {string | number | Date | null | undefined} value */
export function formatDate(value) {
  if (!value) {
    return "";
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    return String(value);
  }
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * @param {string} text
 * @param {string} [tone]
 */
export function lozenge(text, tone = "default") {
  return h("span", { class: `lozenge lozenge-${tone}`, text });
}

/**
 * A button (ADS): kind is default | primary | danger; attrs as h() takes them.
 * @param {Children} label
 * @param {(event: MouseEvent) => unknown} onClick
 * @param {{kind?: string} & Attrs} [options]
 * @returns {HTMLButtonElement}
 */
export function button(label, onClick, { kind = "default", ...attrs } = {}) {
  return h("button", { type: "button", class: `btn btn-${kind}`, onclick: onClick, ...attrs }, label);
}

// ---------------------------------------------------------------- icons and section messages

const SVG = "http://www.w3.org/2000/svg";
// 24 px glyphs in the shape of the Atlassian Design System's status icons, filled with currentColor.
/** @type {Record<string, string>} */
const ICON_PATHS = {
  info: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-9.5a1 1 0 0 0-1 1V16a1 1 0 1 0 2 0v-4.5a1 1 0 0 0-1-1ZM12 9a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 9Z",
  success: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm3.7-10.7a1 1 0 0 0-1.4 0L11 12.6l-1.3-1.3a1 1 0 1 0-1.4 1.4l2 2a1 1 0 0 0 1.4 0l4-4a1 1 0 0 0 0-1.4Z",
  warning: "M13.5 4.9 20.6 17.5A1.7 1.7 0 0 1 19.1 20H4.9a1.7 1.7 0 0 1-1.5-2.5l7.1-12.6a1.7 1.7 0 0 1 3 0ZM12 8a1 1 0 0 0-1 1v4.5a1 1 0 1 0 2 0V9a1 1 0 0 0-1-1Zm0 9.5A1.25 1.25 0 1 0 12 15a1.25 1.25 0 0 0 0 2.5Z",
  error: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-12a1 1 0 0 0-1 1v4a1 1 0 1 0 2 0V9a1 1 0 0 0-1-1Zm0 9a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 17Z",
  discovery: "M12 20a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm0-13a1 1 0 0 0-1 1v5a1 1 0 1 0 2 0V8a1 1 0 0 0-1-1Zm0 10a1.25 1.25 0 1 0 0-2.5A1.25 1.25 0 0 0 12 17Z",
  close: "M12 10.6 7.8 6.4a1 1 0 0 0-1.4 1.4l4.2 4.2-4.2 4.2a1 1 0 1 0 1.4 1.4l4.2-4.2 4.2 4.2a1 1 0 0 0 1.4-1.4L13.4 12l4.2-4.2a1 1 0 0 0-1.4-1.4L12 10.6Z",
};

/**
 * @param {string} name
 * @param {string} [className]
 */
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
/**
 * @param {string} tone
 * @param {string | {title?: string | null, text?: string | null}} content
 * @param {...Children} extra
 */
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
/**
 * @param {string} title
 * @param {string} text
 * @param {Children} [action]
 */
export function emptyState(title, text, action = null) {
  return h("div", { class: "empty-state" },
    h("h3", { class: "empty-title", text: title }),
    text ? h("p", { text }) : null,
    action ? h("div", { class: "actions" }, action) : null);
}

// An expandable (ADS): a button that shows and hides `content` below it, "Show details" / "Hide
// details" with a chevron; aria-expanded and aria-controls tell screen readers what it does, Enter
// and Space work as on any button. `inline` keeps it in a line of text.
/**
 * @param {string} showLabel
 * @param {string} hideLabel
 * @param {Children} content
 * @param {{inline?: boolean, id?: string}} [options]
 */
export function disclosure(showLabel, hideLabel, content, { inline = false, id = nextId("details") } = {}) {
  const region = h(inline ? "span" : "div", { id, class: `disclosure-region${inline ? " disclosure-inline" : ""}`, hidden: true }, content);
  const label = h("span", { text: showLabel });
  const toggle = h("button", { type: "button", class: "disclosure-toggle", "aria-expanded": "false", "aria-controls": id },
    h("span", { class: "disclosure-chevron", "aria-hidden": "true" }), label);
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    label.textContent = open ? hideLabel : showLabel;
    region.hidden = !open;
  });
  return h(inline ? "span" : "div", { class: `disclosure${inline ? " disclosure-inline" : ""}` }, toggle, region);
}

/** @param {string} [label] */
export function spinner(label = "Loading…") {
  return h("p", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), label);
}

/**
 * Runs `work` with aria-busy on `region` meanwhile.
 * @template T
 * @param {Element} region
 * @param {() => Promise<T>} work
 * @returns {Promise<T>}
 */
export async function busy(region, work) {
  region.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    region.setAttribute("aria-busy", "false");
  }
}

// Focus on what `selector` picks under `root`, when it is there (an element of the panel's own).
/**
 * @param {ParentNode} root
 * @param {string} selector
 */
export function focusOn(root, selector) {
  const el = root.querySelector(selector);
  if (el instanceof HTMLElement) {
    el.focus();
  }
}

// Summary cards (ADS-like): one card per count, in the given order, zero counts left out (a
// count nobody needs to read). items: [{label, tone, value, key?}]. The list is named "Counts".
/**
 * @param {{label: string, tone: string, value: number, key?: string}[]} items
 * @param {string} [label]
 */
export function summaryCards(items, label = "Counts") {
  const shown = items.filter((it) => Number(it.value) > 0);
  return h("ul", { class: "stat-cards", "aria-label": label, hidden: shown.length === 0 },
    shown.map((it) => h("li", { class: `stat stat-${it.tone}`, "data-key": it.key || null },
      h("span", { class: "stat-value", text: count(it.value) }),
      h("span", { class: "stat-label", text: it.label }))));
}
