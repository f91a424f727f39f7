// Diagnose: a live check of this installation (the `diagnose` resolver, docs/contract.md §4 and §7).
// Each check is shown with its status and, when it is not OK, what to do.
import { call } from "./api.js";
import { announce, busy, button, clear, h, icon, lozenge, message, plural, spinner } from "./dom.js";

const TONES = {
  ok: { lozenge: "success", label: "OK", icon: "success" },
  warn: { lozenge: "moved", label: "Warning", icon: "warning" },
  fail: { lozenge: "removed", label: "Failed", icon: "error" },
};

export function mountDiagnose(panel) {
  const results = h("div", { class: "results", "aria-busy": "false" });
  const again = button("Run again", () => run(), { id: "diagnose-run" });
  clear(panel,
    h("h2", { text: "Diagnose" }),
    h("p", { text: "A live check of this installation: the tokens Forge sends, the admin check, each Confluence API with the scope it needs (one small call each: nobody is invited), the offline token webhook jobs use, the scheduled trigger, the personal data report, the quota and dormancy. Each problem says what to do." }),
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
        const why = err.details && err.details.adminCheck;
        clear(results, message("error", err.message, why ? h("p", { text: why }) : null));
        announce(err.message);
      }
    });
    again.disabled = false;
  }

  function render(checks) {
    const failed = checks.filter((c) => c.status === "fail").length;
    const warned = checks.filter((c) => c.status === "warn").length;
    const summary = failed
      ? message("error", `${plural(failed, "check")} failed${warned ? `, ${warned} with a warning` : ""}: see what to do below.`)
      : warned
        ? message("warning", `${plural(warned, "check")} with a warning: see below.`)
        : message("success", `All ${checks.length} checks passed.`);
    const list = h("ul", { class: "diag-list", "aria-label": "Checks" },
      checks.map((check) => {
        const tone = TONES[check.status] || TONES.warn;
        return h("li", { class: `diag-check diag-${check.status}` },
          icon(tone.icon, "icon diag-icon"),
          h("div", { class: "diag-body" },
            h("h3", { class: "diag-name" }, check.name, " ", lozenge(tone.label, tone.lozenge)),
            h("p", { class: "diag-detail", text: check.detail })));
      }));
    clear(results, summary, list);
    announce(summary.textContent);
  }

  return { show: () => run() };
}

// For someone the panel reads as not an administrator: a button that asks Confluence why (the
// admin check's answer, with the operations Confluence reported), so a wrong reading is visible.
export function adminCheckHint() {
  const out = h("div", { "aria-live": "polite" });
  const ask = button("Why am I not an administrator here?", async () => {
    ask.disabled = true;
    try {
      await call("diagnose", {});
      clear(out, h("p", { text: "Confluence now confirms you are an administrator: reload the page." }));
    } catch (err) {
      const why = err.details && err.details.adminCheck;
      clear(out, h("p", { text: why || err.message }));
    }
    ask.disabled = false;
  }, { id: "admin-why" });
  return h("div", {}, ask, out);
}
