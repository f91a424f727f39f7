// @ts-check
// Flags (ADS): short notes about what just happened, shown by the host page or, without a bridge,
// in the panel's own corner.

import { showFlag } from "./bridge.js";
import { announce, h, icon, nextId } from "./dom.js";

// Flags (ADS): short notes in the bottom corner of the page that go away by themselves (success and
// info after 8 s) or stay until dismissed (warnings and errors). actions: [{label, onClick}]; an
// action closes its flag, then runs.
// Inside Confluence the host page shows them (@forge/bridge's showFlag): the panel's frame grows with
// its content, so a flag fixed to the frame's bottom could be far below what the admin sees. The
// host's flag is an alert, read out there. Without a bridge (the backend's bare page) the panel shows
// the flag in its own page and the live region reads it out.
/** @typedef {{label: string, onClick: () => void}} FlagAction */
/**
 * @param {"success" | "info" | "warning" | "error"} tone
 * @param {string} title
 * @param {string} [text]
 * @param {FlagAction[]} [actions]
 */
export function flag(tone, title, text = "", actions = []) {
  const id = `access-desk-flag-${flagSeed}-${nextId("n")}`;
  /** @type {ReturnType<typeof showFlag>} */
  let shown = null;
  /** @param {FlagAction} action */
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

/**
 * @param {string} tone
 * @param {string} title
 * @param {string} text
 * @param {FlagAction[]} actions
 */
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
  while (stack.lastElementChild && stack.children.length > 3) {
    stack.lastElementChild.remove();
  }
  if (tone === "success" || tone === "info") {
    setTimeout(dismiss, 8000);
  }
  announce(text ? `${title} ${text}` : title);
}
