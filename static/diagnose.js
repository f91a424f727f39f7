// @ts-check
// Diagnose: a live check of this installation (the `diagnose` resolver, docs/contract.md §4 and §7).
// Each check reads as a plain sentence (its `summary`, the people it names shown by name with an
// avatar), problems first; the technical reading (`detail`: scopes, claims, ISO times, account ids)
// is behind "Show details".
import { call } from "./api.js";
import { announce, busy, button, clear, disclosure, h, icon, lozenge, message, plural, spinner } from "./dom.js";
import { person } from "./people.js";

/**
 * One check of the diagnose resolver's answer (docs/contract.md §7).
 * @typedef {object} Check
 * @property {string} name
 * @property {string} status ok | warn | fail
 * @property {string} [detail] the technical reading
 * @property {string} [summary] the same in a plain sentence
 * @property {string[]} [accounts] account ids the summary names
 */

/** @type {Record<string, {lozenge: string, label: string, icon: string, order: number}>} */
const TONES = {
  ok: { lozenge: "success", label: "OK", icon: "success", order: 2 },
  warn: { lozenge: "moved", label: "Warning", icon: "warning", order: 1 },
  fail: { lozenge: "removed", label: "Failed", icon: "error", order: 0 },
};

// Each check's name in plain words (the backend's name, which says which API or token, stays in the
// details); a check the panel does not know yet shows under its own name.
/** @type {Record<string, string>} */
const TITLES = {
  "Forge invocation token": "Calls from Forge",
  "User token": "Your sign-in",
  "System token": "The app's own sign-in",
  "Admin check": "You as administrator",
  "Look up users (users-bulk)": "Looking up users",
  "Check access (check-access-by-email)": "Checking access",
  "Invite (invite-by-email)": "Inviting",
  "Offline token": "Webhook jobs",
  "Scheduled trigger": "Forge's hourly call",
  "Personal data report": "Personal data report",
  Quota: "Confluence's points",
  Dormancy: "Active on this site",
};

/**
 * @param {HTMLElement} panel
 * @returns {import("./app.js").View}
 */
export function mountDiagnose(panel) {
  const results = h("div", { class: "results", "aria-busy": "false" });
  const again = button("Run again", () => run(), { id: "diagnose-run" });
  clear(panel,
    h("h2", { text: "Diagnose" }),
    h("p", { text: "A live check of Access Desk on this site: what Forge sends with each call, whether Confluence sees you as an administrator, each Confluence feature Access Desk uses (one small call each: nobody is invited), webhook jobs, Forge's hourly call, the personal data report, Confluence's points and whether Access Desk is active here. Each problem says what to do." }),
    h("div", { class: "actions" }, again),
    results);

  async function run() {
    again.disabled = true;
    clear(results, spinner("Checking this installation…"));
    announce("Checking this installation.");
    await busy(results, async () => {
      try {
        render((await call("diagnose", {})).checks || []);
      } catch (err) {
        clear(results, message("error", err.message, adminCheckAnswer(err)));
        announce(err.message);
      }
    });
    again.disabled = false;
  }

  /** @param {Check[]} checks */
  function render(checks) {
    const failed = checks.filter((c) => c.status === "fail").length;
    const warned = checks.filter((c) => c.status === "warn").length;
    const summary = failed
      ? message("error", `${plural(failed, "check")} failed${warned ? `, ${warned} with a warning` : ""}: see what to do below.`)
      : warned
        ? message("warning", `${plural(warned, "check")} with a warning: see below.`)
        : message("success", `All ${checks.length} checks passed.`);
    const ordered = checks
      .map((check, at) => ({ check, at }))
      .sort((a, b) => (TONES[a.check.status] || TONES.warn).order - (TONES[b.check.status] || TONES.warn).order || a.at - b.at)
      .map((x) => x.check);
    const list = h("ul", { class: "diag-list", "aria-label": "Checks" },
      ordered.map((check) => {
        const tone = TONES[check.status] || TONES.warn;
        return h("li", { class: `diag-check diag-${check.status}` },
          icon(tone.icon, "icon diag-icon"),
          h("div", { class: "diag-body" },
            h("h3", { class: "diag-name" }, TITLES[check.name] || check.name, " ", lozenge(tone.label, tone.lozenge)),
            h("p", { class: "diag-summary" }, sentence(check.summary || check.detail, check.accounts)),
            check.summary ? disclosure("Show details", "Hide details", details(check)) : null));
      }));
    clear(results, summary, list);
    announce(summary.textContent);
  }

  return { show: () => run() };
}

// The technical reading: which check, and what it found.
/** @param {Check} check */
function details(check) {
  return h("div", { class: "diag-detail" },
    h("p", {}, h("span", { class: "diag-detail-label", text: "Check: " }), check.name),
    h("p", { text: check.detail }));
}

// A summary with the accounts it names shown as people (avatar and name), the rest as text.
/**
 * @param {string | undefined} text
 * @param {string[] | undefined} accounts
 * @returns {import("./dom.js").Children}
 */
function sentence(text, accounts) {
  const ids = (accounts || []).filter(Boolean);
  if (!ids.length) {
    return text;
  }
  /** @type {import("./dom.js").Children[]} */
  const parts = [];
  let rest = String(text);
  while (rest) {
    const hits = ids.map((id) => ({ at: rest.indexOf(id), id })).filter(({ at }) => at >= 0).sort((a, b) => a.at - b.at);
    if (!hits.length) {
      parts.push(rest);
      break;
    }
    const { at, id } = hits[0];
    parts.push(rest.slice(0, at), person(id));
    rest = rest.slice(at + id.length);
  }
  return parts;
}

// What the admin check found, from a 403's details: the plain sentence, the technical reading
// behind "Show details".
/** @param {{details?: unknown} | null | undefined} err an ApiError */
function adminCheckAnswer(err) {
  // A 403's details, as the backend sends them (docs/contract.md §4).
  const details = /** @type {{adminCheck?: string, adminCheckSummary?: string} | null | undefined} */ (err && err.details);
  const technical = details && details.adminCheck;
  const plain = details && details.adminCheckSummary;
  if (!technical && !plain) {
    return null;
  }
  return h("div", { class: "admin-answer" },
    h("p", { text: plain || technical }),
    plain && technical ? disclosure("Show details", "Hide details", h("p", { class: "diag-detail", text: technical })) : null);
}

// For someone the panel reads as not an administrator: a button that asks Confluence why (the
// admin check's answer in plain words, the operations Confluence reported behind "Show details"),
// so a wrong reading is visible.
export function adminCheckHint() {
  const out = h("div", { "aria-live": "polite" });
  const ask = button("Why am I not an administrator here?", async () => {
    ask.disabled = true;
    try {
      await call("diagnose", {});
      clear(out, h("p", { text: "Confluence now confirms you are an administrator: reload the page." }));
    } catch (err) {
      clear(out, adminCheckAnswer(err) || h("p", { text: err.message }));
    }
    ask.disabled = false;
  }, { id: "admin-why" });
  return h("div", {}, ask, out);
}
