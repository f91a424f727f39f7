// @ts-check
// The webhook tab: its state (webhookStatus: the URL, whether a secret is set, since when and by
// whom, who webhook jobs act as, how long the previous secret still works, recent deliveries with
// the refused ones and why), the first "Create secret" or a later rotation (optionally revoking the
// previous secret at once), the new secret shown once with "Copy secret" and "Done", a "Send test
// delivery" button (sendTestWebhook: signed and sent through the real endpoint by the server) and
// signed test commands (Standard Webhooks headers, README "Webhooks"). When the state cannot be
// read, the tab says why and offers to try again.
import { call } from "./api.js";
import { copyText } from "./csv.js";
import { announce, busy, button, clear, emptyState, focusOn, formatDate, h, lozenge, message, nextId, spinner } from "./dom.js";
import { pagedTable } from "./table.js";
import { person } from "./people.js";

/**
 * webhookStatus's answer (docs/contract.md).
 * @typedef {object} WebhookStatus
 * @property {string} [url]
 * @property {boolean} [configured]
 * @property {string | null} [rotatedAt]
 * @property {string | null} [actingAs]
 * @property {string | null} [previousValidUntil]
 * @property {{at?: string, webhookId?: string, status?: string, jobId?: string | null}[]} [recentDeliveries]
 * @property {{at?: string, reason?: string, webhookId?: string | null}[]} [recentRefusals]
 */
/**
 * One row of Recent deliveries: an accepted (or replayed) delivery, or a refused one and why.
 * @typedef {{kind: "accepted" | "replayed" | "refused", at?: string, webhookId?: string | null,
 *   jobId?: string | null, reason?: string}} DeliveryRow
 */

/** @param {string} url */
export function pythonExample(url) {
  return `# pip install standardwebhooks requests
import json, os, uuid
from datetime import datetime, timezone

import requests
from standardwebhooks import Webhook

URL = "${url}"
SECRET = os.environ["ACCESS_DESK_WEBHOOK_SECRET"]  # the whsec_… secret shown once

body = json.dumps({"type": "access.invite",
                   "data": {"emails": ["new.person@example.com"], "dryRun": True}})
msg_id = f"msg_{uuid.uuid4().hex}"  # reuse the same id when you retry a delivery
now = datetime.now(tz=timezone.utc)
signature = Webhook(SECRET).sign(msg_id, now, body)

answer = requests.post(URL, data=body, timeout=30, headers={
    "content-type": "application/json",
    "webhook-id": msg_id,
    "webhook-timestamp": str(int(now.timestamp())),
    "webhook-signature": signature,
})
print(answer.status_code, answer.json())  # 202 {"jobId": "…"}: a preview job (dryRun), nobody invited
`;
}

/** @param {string} url */
export function curlExample(url) {
  return `# A signed test delivery: a preview (dryRun) job, nobody is invited. Needs curl, openssl, base64 and od;
# the secret comes from the environment: export ACCESS_DESK_WEBHOOK_SECRET='whsec_…' first.
URL='${url}'
BODY='{"type":"access.invite","data":{"emails":["new.person@example.com"],"dryRun":true}}'
ID="msg_$(openssl rand -hex 16)"
TS="$(date +%s)"
KEY="$(printf '%s' "\${ACCESS_DESK_WEBHOOK_SECRET#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \\n')"
SIG="$(printf '%s' "$ID.$TS.$BODY" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY" -binary | base64)"
curl -sS -X POST "$URL" \\
  -H 'content-type: application/json' \\
  -H "webhook-id: $ID" \\
  -H "webhook-timestamp: $TS" \\
  -H "webhook-signature: v1,$SIG" \\
  --data-binary "$BODY"
`;
}

/**
 * @param {string} label
 * @param {string} value
 * @param {boolean} [secret]
 * @param {{kind?: string, label?: string}} [options]
 */
function copyField(label, value, secret = false, { kind = "default", label: copyLabel = "Copy" } = {}) {
  const id = nextId("field");
  const input = h("input", { id, type: "text", readonly: true, value, class: secret ? "mono secret" : "mono", spellcheck: "false" });
  return h("div", { class: "copy-field" },
    h("label", { for: id, class: "field-label", text: label }),
    h("div", { class: "copy-row" }, input,
      button(copyLabel, () => copyText(value, `Copied the ${label.toLowerCase()}`),
        { kind, "aria-label": copyLabel === "Copy" ? `Copy the ${label.toLowerCase()}` : null })));
}

/**
 * @param {string} title
 * @param {string} code
 */
function codeBlock(title, code) {
  const id = nextId("code");
  return h("section", { class: "code-block", "aria-labelledby": id },
    h("div", { class: "block-head" }, h("h4", { id, text: title }),
      button("Copy", () => copyText(code, `Copied the ${title} example`), { "aria-label": `Copy the ${title} example` })),
    h("pre", { tabindex: "0", "aria-labelledby": id }, h("code", { text: code })));
}

// Why a delivery was refused, in words (webhookStatus recentRefusals' reason).
/** @type {Record<string, string>} */
export const REFUSALS = {
  bad_signature: "The signature matched neither the current secret nor the previous one: the sender signs with another secret.",
  stale_timestamp: "The webhook-timestamp was more than 5 minutes off: check the sender's clock, or it resent an old delivery.",
  missing_headers: "A webhook-id, webhook-timestamp or webhook-signature header was missing or malformed.",
  no_secret: "No secret was set yet: create one and give it to the sender.",
};

/**
 * @param {HTMLElement} panel
 * @param {import("./app.js").Go} [go]
 * @returns {import("./app.js").View}
 */
export function mountWebhook(panel, go = {}) {
  const statusArea = h("div", { class: "results", "aria-busy": "false" });
  const area = h("div", { "aria-busy": "false" });
  /** @type {WebhookStatus | null} webhookStatus's answer, or null before the first one */
  let status = null;
  let secretShown = false; // a new secret is on screen: the page's primary action is finishing
  const testArea = h("div");
  clear(panel,
    h("h2", { text: "Webhook" }),
    h("p", { text: "HR and identity tools can start invitation jobs by sending a signed webhook (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature). Jobs from the webhook run as the administrator who last created or rotated the secret, and show up under Jobs and in the audit log." }),
    statusArea);

  async function refresh() {
    statusArea.setAttribute("aria-busy", "true");
    if (!status) {
      clear(statusArea, spinner("Loading the webhook's state…"), area);
    }
    try {
      status = await call("webhookStatus", {});
    } catch (err) {
      statusArea.setAttribute("aria-busy", "false");
      if (!status) {
        clear(statusArea, message("error", { title: "The webhook's state could not be loaded", text: err.message },
          button("Try again", () => refresh())), area);
      } else {
        clear(area, message("error", { title: "The webhook's state could not be refreshed", text: err.message }));
      }
      return;
    }
    statusArea.setAttribute("aria-busy", "false");
    renderStatus();
  }

  // The state last read. What shows it (and the buttons it shows) runs only once refresh() read one.
  function known() {
    if (!status) {
      throw new Error("The webhook's state has not been read yet.");
    }
    return status;
  }

  function startButton() {
    const current = known();
    const kind = secretShown ? "default" : "primary";
    return current.configured
      ? button("Rotate secret…", () => confirm(false), { kind, id: "rotate-start" })
      : button("Create secret…", () => confirm(false), { kind, id: "rotate-start" });
  }

  // Recent deliveries and refusals, newest first, in one table.
  /** @returns {DeliveryRow[]} */
  function deliveryRows() {
    const current = known();
    /** @type {DeliveryRow[]} */
    const accepted = (current.recentDeliveries || []).map((d) => ({ ...d, kind: d.status === "replayed" ? "replayed" : "accepted" }));
    /** @type {DeliveryRow[]} */
    const refused = (current.recentRefusals || []).map((r) => ({ ...r, kind: "refused" }));
    return [...accepted, ...refused].sort((a, b) => String(b.at).localeCompare(String(a.at)));
  }

  /** @param {HTMLButtonElement} trigger */
  async function sendTest(trigger) {
    trigger.disabled = true;
    clear(testArea, spinner("Sending a signed test delivery…"));
    try {
      const answer = await call("sendTestWebhook", {});
      const jobId = answer.answer && answer.answer.jobId;
      await refresh();
      const viewJob = jobId && go.openJob ? button("View job", () => go.openJob?.(jobId), { id: "test-view-job" }) : null;
      clear(testArea, answer.status === 202
        ? message("success", {
            title: "Test delivery accepted",
            text: `The webhook answered ${answer.status} to a signed delivery (${answer.webhookId}): a preview job for ${answer.email}, a reserved address; nobody is invited.`,
          }, viewJob)
        : message("warning", {
            title: "Test delivery refused",
            text: `The webhook answered ${answer.status}${answer.answer && answer.answer.error ? ` (${answer.answer.error})` : ""}. Recent deliveries says why.`,
          }));
      announce(answer.status === 202 ? "Test delivery accepted." : "Test delivery refused.");
    } catch (err) {
      clear(testArea, message("error", { title: "The test delivery could not be sent", text: err.message }));
    } finally {
      trigger.disabled = false;
    }
  }

  function renderStatus() {
    const current = known();
    /** @type {[string, import("./dom.js").Children][]} */
    const facts = [
      ["Secret", current.configured
        ? [lozenge("Set", "success"), current.rotatedAt ? ` since ${formatDate(current.rotatedAt)}` : "", current.actingAs ? [" by ", person(current.actingAs, { plain: true })] : ""]
        : [lozenge("Not set", "default"), " Deliveries are refused until a secret is created."]],
    ];
    if (current.configured) {
      facts.push(["Jobs run as", current.actingAs ? person(current.actingAs) : "Nobody yet"]);
    }
    if (current.previousValidUntil && new Date(current.previousValidUntil).getTime() > Date.now()) {
      facts.push(["Previous secret", [`Still works until ${formatDate(current.previousValidUntil)}. `,
        h("button", { type: "button", class: "link-btn", id: "revoke-now", text: "Revoke it now…", onclick: () => confirm(true) })]]);
    }
    const deliveries = deliveryRows();
    const refusals = current.recentRefusals || [];
    const testButton = button("Send test delivery", () => sendTest(testButton), { id: "send-test", disabled: !current.configured });
    clear(statusArea,
      copyField("Webhook URL", current.url || ""),
      h("dl", { class: "facts" }, facts.map(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)])),
      h("div", { class: "actions" }, startButton()),
      area, // the confirm, then the new secret, right under the button that asked for them
      h("div", { class: "result-block" },
        h("h3", { id: "deliveries-h", text: "Recent deliveries" }),
        refusals.length
          ? message("warning", {
              title: `${refusals.length === 1 ? "A delivery was" : `${refusals.length} deliveries were`} refused`,
              text: `The latest, ${formatDate(refusals[0].at)}: ${REFUSALS[refusals[0].reason ?? ""] || refusals[0].reason}`,
            })
          : null,
        pagedTable({
          caption: "Recent deliveries",
          rows: deliveries,
          pageSize: 20,
          empty: emptyState("No deliveries yet",
            current.configured ? "Send a test delivery to see one here." : "Create a secret, then send a test delivery."),
          columns: [
            { label: "When", className: "nowrap", cell: (d) => formatDate(d.at) },
            { label: "Webhook id", className: "mono", cell: (d) => d.webhookId || "" },
            {
              label: "Result",
              cell: (d) => (d.kind === "refused"
                ? [lozenge("Refused", "removed"), h("span", { class: "cell-sub", text: REFUSALS[d.reason ?? ""] || d.reason })]
                : d.kind === "replayed" ? lozenge("Repeat, ignored", "default") : lozenge("Accepted", "success")),
            },
            { label: "Job", cell: jobCell, text: (d) => d.jobId || "" },
          ],
        })),
      h("section", { "aria-labelledby": "test-h" },
        h("h3", { id: "test-h", text: "Test the webhook" }),
        h("p", { class: "field-hint", text: current.configured
          ? "Access Desk signs a delivery with the current secret and sends it through the real endpoint: a preview for one reserved address, so nobody is invited. It shows up in Recent deliveries and under Jobs."
          : "Create a secret first: the test delivery is signed with it." }),
        h("div", { class: "actions" }, testButton),
        testArea),
      current.url ? h("section", { "aria-labelledby": "commands-h" },
        h("h3", { id: "commands-h", text: "Send a signed test from your own system" }),
        h("p", { class: "field-hint", text: "Each command sends a preview job for one address (nobody is invited) signed with the secret in ACCESS_DESK_WEBHOOK_SECRET." }),
        codeBlock("curl and openssl", curlExample(current.url)),
        codeBlock("Python", pythonExample(current.url))) : null);
  }

  // A delivery's job, as a link to it under Jobs (where one tool may open another).
  /** @param {DeliveryRow} d */
  function jobCell(d) {
    const { jobId } = d;
    const { openJob } = go;
    return jobId && openJob
      ? h("button", { type: "button", class: "link-btn", text: "View job", "aria-label": `View job of delivery ${d.webhookId || ""}`, onclick: () => openJob(jobId) })
      : "";
  }

  /** @param {boolean} revoke */
  function confirm(revoke) {
    const current = known();
    secretShown = false;
    const first = !current.configured;
    const canRevoke = current.configured;
    statusArea.querySelectorAll("#rotate-start, #revoke-now").forEach((b) => {
      if (b instanceof HTMLButtonElement) {
        b.disabled = true;
      }
    });
    const boxId = nextId("revoke");
    const box = canRevoke ? h("input", { type: "checkbox", id: boxId, checked: revoke }) : null;
    const title = first ? "Create the webhook secret?" : "Rotate the webhook secret?";
    clear(area, h("div", { class: "confirm", role: "group", "aria-labelledby": "rotate-h" },
      h("h3", { id: "rotate-h", text: title }),
      h("p", {
        text: first
          ? "Senders sign each delivery with this secret. It is shown once; webhook jobs will run as you."
          : "A new secret becomes the current one at once. Systems still signing with the current secret keep working for 24 hours, then they are refused: update them before then. A secret replaced by an earlier rotation stops working now. Webhook jobs will run as you.",
      }),
      box ? h("div", { class: "check-row" }, box, h("label", { for: boxId, text: "Revoke the current secret now (it leaked): senders still using it are refused at once" })) : null,
      h("div", { class: "actions" },
        button(first ? "Create secret" : "Rotate secret", () => rotate(Boolean(box && box.checked)), { kind: first ? "primary" : "danger", id: "rotate-confirm" }),
        button("Cancel", () => {
          clear(area);
          renderStatus();
          focusOn(statusArea, "#rotate-start");
          announce("The secret was not changed.");
        }))));
    focusOn(area, "#rotate-confirm");
  }

  /** @param {boolean} revokePrevious */
  async function rotate(revokePrevious) {
    const current = known();
    const first = !current.configured;
    // The confirm box (and its focused button) goes away: keep focus in the area, not on <body>.
    const waiting = h("div", { tabindex: "-1" }, spinner("Creating the secret…"));
    clear(area, waiting);
    waiting.focus();
    await busy(area, async () => {
      try {
        const { secret } = await call("rotateWebhookSecret", revokePrevious ? { revokePrevious: true } : {});
        const secretField = copyField("Signing secret", secret, true, { kind: "primary", label: "Copy secret" });
        const done = button("Done", () => {
          secretShown = false;
          clear(area);
          renderStatus();
          focusOn(statusArea, "#send-test");
          announce("The secret is no longer shown.");
        }, { id: "secret-done" });
        const words = first
          ? "It is shown only this once: store it in your sender's secret store now. Deliveries signed with it are accepted from now on, and webhook jobs run as you."
          : `It is shown only this once: store it in your sender's secret store now. ${revokePrevious ? "The previous secret no longer works." : "The secret it replaced keeps working for 24 hours, so you can switch the sender over."}`;
        secretShown = true;
        clear(area,
          message("success", { title: first ? "Webhook secret created" : "New secret created", text: words }),
          secretField,
          h("div", { class: "actions" }, done));
        await refresh(); // moves `area` with the new secret into the new state's page
        focusOn(secretField, "input");
        announce("New webhook secret created. It is shown only this once.");
      } catch (err) {
        clear(area, message("error", { title: "The secret was not changed", text: err.message }));
        renderStatus();
        focusOn(statusArea, "#rotate-start");
      }
    });
  }

  return { show: () => refresh() };
}
