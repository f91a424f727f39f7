// Webhook set-up: rotate the signing secret (after a confirm), show URL and secret once, with signing
// examples for the Standard Webhooks headers (CONTRACT.md §5).
import { call } from "./api.js";
import { announce, busy, button, clear, copyText, h, message, nextId, spinner } from "./dom.js";

export function pythonExample(url) {
  return `# pip install standardwebhooks requests
import json, os, uuid
from datetime import datetime, timezone

import requests
from standardwebhooks import Webhook

URL = "${url}"
SECRET = os.environ["ACCESS_DESK_WEBHOOK_SECRET"]  # the whsec_… secret shown once

body = json.dumps({"type": "access.invite",
                   "data": {"emails": ["new.person@example.com"], "dryRun": False}})
msg_id = f"msg_{uuid.uuid4().hex}"  # reuse the same id when you retry a delivery
now = datetime.now(tz=timezone.utc)
signature = Webhook(SECRET).sign(msg_id, now, body)

answer = requests.post(URL, data=body, timeout=30, headers={
    "content-type": "application/json",
    "webhook-id": msg_id,
    "webhook-timestamp": str(int(now.timestamp())),
    "webhook-signature": signature,
})
print(answer.status_code, answer.json())  # 202 {"jobId": "…"}
`;
}

export function curlExample(url) {
  return `# needs curl, openssl, base64 and od; the secret comes from the environment
URL='${url}'
BODY='{"type":"access.invite","data":{"emails":["new.person@example.com"],"dryRun":false}}'
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

function copyField(label, value, secret = false) {
  const id = nextId("field");
  const input = h("input", { id, type: "text", readonly: true, value, class: secret ? "mono secret" : "mono", spellcheck: "false" });
  return h("div", { class: "copy-field" },
    h("label", { for: id, class: "field-label", text: label }),
    h("div", { class: "copy-row" }, input,
      button("Copy", () => copyText(value, `Copied the ${label.toLowerCase()}`), { "aria-label": `Copy the ${label.toLowerCase()}` })));
}

function codeBlock(title, code) {
  const id = nextId("code");
  return h("section", { class: "code-block", "aria-labelledby": id },
    h("div", { class: "block-head" }, h("h4", { id, text: title }),
      button("Copy", () => copyText(code, `Copied the ${title} example`), { "aria-label": `Copy the ${title} example` })),
    h("pre", { tabindex: "0", "aria-labelledby": id }, h("code", { text: code })));
}

export function mountWebhook(panel) {
  const area = h("div", { class: "results", "aria-busy": "false" });
  const start = button("Rotate webhook secret…", () => confirm(), { kind: "primary", id: "rotate-start" });
  clear(panel,
    h("h2", { text: "Webhook" }),
    h("p", { text: "HR and identity tools can start invitation jobs by sending a signed webhook (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature). Jobs from the webhook run as the administrator who last rotated the secret, and show up under Jobs and in the audit log." }),
    h("div", { class: "actions" }, start),
    area);

  function confirm() {
    start.disabled = true;
    clear(area, h("div", { class: "confirm", role: "group", "aria-labelledby": "rotate-h" },
      h("h3", { id: "rotate-h", text: "Rotate the webhook secret?" }),
      h("p", { text: "A new secret becomes the current one at once. Systems still signing with the current secret keep working for 24 hours, then they are refused: update them before then. A secret replaced by an earlier rotation stops working now. Webhook jobs will run as you." }),
      h("div", { class: "actions" },
        button("Rotate secret", () => rotate(), { kind: "danger", id: "rotate-confirm" }),
        button("Cancel", () => {
          clear(area);
          start.disabled = false;
          start.focus();
          announce("The secret was not changed.");
        }))));
    area.querySelector("#rotate-confirm").focus();
  }

  async function rotate() {
    // The confirm box (and its focused button) goes away: keep focus in the area, not on <body>.
    const waiting = h("div", { tabindex: "-1" }, spinner("Rotating the secret…"));
    clear(area, waiting);
    waiting.focus();
    await busy(area, async () => {
      try {
        const { url, secret } = await call("rotateWebhookSecret", {});
        const urlField = copyField("Webhook URL", url);
        clear(area,
          message("success", "New secret created. It is shown only this once: store it in your sender's secret store now. The secret it replaced keeps working for 24 hours."),
          urlField,
          copyField("Signing secret", secret, true),
          codeBlock("Python", pythonExample(url)),
          codeBlock("curl and openssl", curlExample(url)));
        start.disabled = false; // before any focus move: the catch below needs it enabled too
        urlField.querySelector("input").focus();
        announce("New webhook secret created. It is shown only this once.");
      } catch (err) {
        clear(area, message("error", err.message));
        start.disabled = false;
        start.focus();
        announce(err.message);
      }
    });
  }
}
