// @ts-check
// Access Desk's admin panel: who is signed in, then the tools they may use, as a keyboard-friendly
// tablist. Every backend call goes through invokeRemote (bridge.js).
import { mountAccess } from "./access.js";
import { call } from "./api.js";
import { mountAudit } from "./audit.js";
import { adminCheckHint, mountDiagnose } from "./diagnose.js";
import { announce, clear, disclosure, h, message, spinner } from "./dom.js";
import { mountInvite } from "./invite.js";
import { mountJobs } from "./jobs.js";
import { mountLookup } from "./lookup.js";
import { nameOf, person } from "./people.js";
import { mountWebhook } from "./webhook.js";
import { quotaMeter } from "./quota.js";

/**
 * What one tool may ask of another (a job from the audit log, say), given to the tools that use it.
 * @typedef {object} Go
 * @property {(emails: string[]) => void} [checkThese] open Check access with these emails
 * @property {(emails: string[]) => void} [inviteThese] open Invite with these emails
 * @property {(jobId: string) => void} [openJob] open this job under Jobs
 * @property {(key: string) => void} [showTab] show this tool
 */
/**
 * A mounted tool: show() runs each time its tab is shown; the rest is what other tools may ask of it.
 * @typedef {object} View
 * @property {() => unknown} [show]
 * @property {(emails: string[]) => void} [prefill]
 * @property {(jobId: string) => void} [open]
 */

const TOOLS = [
  { key: "lookup", label: "Look up users", admin: false },
  { key: "access", label: "Check access", admin: true },
  { key: "invite", label: "Invite", admin: true },
  { key: "jobs", label: "Jobs", admin: true },
  { key: "audit", label: "Audit log", admin: true },
  { key: "webhook", label: "Webhook", admin: true },
  { key: "diagnose", label: "Diagnose", admin: true },
];

async function start() {
  // Both are in index.html, which loads this module.
  const main = /** @type {HTMLElement} */ (document.getElementById("main"));
  const who = /** @type {HTMLElement} */ (document.getElementById("who"));
  main.setAttribute("aria-busy", "true");
  clear(main, spinner("Loading Access Desk…"));
  let me;
  try {
    me = await call("whoami", {});
  } catch (err) {
    main.setAttribute("aria-busy", "false");
    clear(main, message("error", err.message));
    announce(err.message);
    return;
  }
  const role = me.isAdmin ? "Confluence administrator" : "Confluence user";
  // Your own name from a lookup of your account; when Confluence will not show it (an external
  // collaborator may not view profiles), "You", with the account id behind "Show details".
  clear(who, "Signed in as ", person(me.accountId, { fallback: "You" }), ` · ${role}`);
  nameOf(me.accountId).then((name) => {
    if (!name) {
      const more = disclosure("Show details", "Hide details", h("span", { class: "mono", text: `Account id: ${me.accountId}` }), { inline: true });
      who.append(" ", more);
    }
  });
  const tools = TOOLS.filter((t) => me.isAdmin || !t.admin);
  const body = h("div");
  clear(main,
    me.isAdmin
      ? null
      : message("info", "You can look up users here. Checking access, inviting people, jobs, the audit log, webhooks and the diagnosis are for Confluence administrators.", adminCheckHint()),
    body);
  if (tools.length === 1) {
    // One tool: no tab strip, just the tool under its own heading.
    const only = h("section", { id: `panel-${tools[0].key}`, class: "tabpanel", "aria-label": tools[0].label });
    clear(body, only);
    const view = mounters({})[tools[0].key](only) || {};
    if (view.show) {
      view.show();
    }
  } else {
    mountTabs(body, tools);
  }
  if (me.isAdmin) {
    const meter = quotaMeter(); // the points pool: refreshed now and every 30 s
    who.after(meter.el);
    meter.refresh();
    setInterval(meter.refresh, 30000);
  }
  main.setAttribute("aria-busy", "false");
  document.documentElement.dataset.ready = "true";
  announce(me.isAdmin ? "Access Desk is ready." : "Access Desk is ready: you can look up users.");
}

// Each tool's mount function; `go` lets one tool open another (a job from the audit log, say).
/**
 * @param {Go} go
 * @returns {Record<string, (panel: HTMLElement) => View | void>}
 */
function mounters(go) {
  return {
    lookup: (p) => mountLookup(p, { checkThese: go.checkThese }),
    access: (p) => mountAccess(p, { inviteThese: go.inviteThese }),
    invite: (p) => mountInvite(p, go),
    jobs: (p) => mountJobs(p, go),
    audit: (p) => mountAudit(p, go),
    webhook: (p) => mountWebhook(p, go),
    diagnose: (p) => mountDiagnose(p),
  };
}

/**
 * @param {HTMLElement} root
 * @param {typeof TOOLS} tools
 */
function mountTabs(root, tools) {
  const tablist = h("div", { role: "tablist", "aria-label": "Access Desk tools", class: "tabs" });
  /** @type {Record<string, HTMLElement>} */
  const panels = {};
  /** @type {Record<string, HTMLButtonElement>} */
  const tabs = {};
  /** @type {Record<string, View>} */
  const views = {};
  for (const tool of tools) {
    const tab = h("button", {
      type: "button",
      role: "tab",
      id: `tab-${tool.key}`,
      "aria-controls": `panel-${tool.key}`,
      "aria-selected": "false",
      tabindex: "-1",
      class: "tab",
      text: tool.label,
      onclick: () => select(tool.key, false),
    });
    tabs[tool.key] = tab;
    tablist.append(tab);
    panels[tool.key] = h("section", {
      role: "tabpanel",
      id: `panel-${tool.key}`,
      "aria-labelledby": `tab-${tool.key}`,
      tabindex: "0",
      class: "tabpanel",
      hidden: true,
    });
  }
  tablist.addEventListener("keydown", (event) => {
    const keys = tools.map((t) => t.key);
    const at = keys.findIndex((k) => tabs[k] === document.activeElement);
    if (at < 0) {
      return;
    }
    /** @type {Record<string, number>} */
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: keys.length - 1 };
    if (!(event.key in moves)) {
      return;
    }
    event.preventDefault();
    const to = (moves[event.key] + keys.length) % keys.length;
    select(keys[to], true);
  });
  clear(root, tablist, Object.values(panels));

  const mount = mounters({
    inviteThese: (emails) => { select("invite", true); views.invite.prefill?.(emails); },
    checkThese: (emails) => { select("access", true); views.access.prefill?.(emails); },
    openJob: (jobId) => { select("jobs", true); views.jobs.open?.(jobId); },
    showTab: (key) => select(key, true),
  });

  /** @type {string | null} */
  let selected = null;
  /**
   * @param {string} key
   * @param {boolean} focus
   */
  function select(key, focus) {
    // The tab already shown, clicked again: nothing to reload (a list would load twice at once).
    const again = key === selected && Boolean(views[key]);
    selected = key;
    for (const t of tools) {
      const on = t.key === key;
      tabs[t.key].setAttribute("aria-selected", on ? "true" : "false");
      tabs[t.key].tabIndex = on ? 0 : -1;
      panels[t.key].hidden = !on;
    }
    if (!views[key]) {
      views[key] = mount[key](panels[key]) || {};
    }
    if (views[key].show && !again) {
      views[key].show();
    }
    if (focus) {
      tabs[key].focus();
    }
  }

  select(tools[0].key, false);
}

start();
