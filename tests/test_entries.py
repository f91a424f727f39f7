"""The pasted-list rules (``entries``) against the shared table ``tests/entry_cases.json`` (the
panel's mirror, static/entries.js, is checked against the same table in Chromium:
tests/e2e/test_panel_paste.py), and the backend applying them to resolver input and webhook bodies.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from access_desk import entries
from resolvers.context import BadInput
from resolvers.inputs import entry_list

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent / "entry_cases.json").read_text(encoding="utf-8")
)["cases"]
FORMS = next(c for c in CASES if c.get("forms"))


def expected(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "entries": case["entries"],
        "invalid": case["invalid"],
        "header": case.get("header"),
        "repeated": case.get("repeated", 0),
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_rules_read_each_case_of_the_table(case: dict[str, Any]) -> None:
    found = entries.parse(case["text"], case["kind"])
    invalid: list[dict[str, Any]] = [
        {"entry": i.entry, "reason": i.reason, "line": i.line} for i in found.invalid
    ]
    got = {"entries": found.entries, "invalid": invalid, "header": found.header}
    assert {**got, "repeated": found.repeated} == expected(case)
    # One list of both, in the order first seen; what the backend sends on and what it refuses.
    assert sorted(found.written) == sorted(case["entries"] + [i["entry"] for i in invalid])
    assert all(entries.accepted(e, case["kind"]) for e in found.entries)
    assert not any(entries.accepted(i["entry"], case["kind"]) for i in invalid)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_list_in_a_payload_reads_like_its_lines_pasted(case: dict[str, Any]) -> None:
    lines = case["text"].split("\n")
    field = "emails" if case["kind"] == "email" else "accountIds"
    written = case["entries"] + [i["entry"] for i in case["invalid"]]
    if any(len(line.strip()) > entries.MAX_LENGTH for line in lines):
        with pytest.raises(BadInput) as refused:  # an element that long is refused as it is
            entry_list({field: lines}, field, case["kind"])
        assert list(refused.value.details) == [f"{field}[0]"]
        return
    if not written:
        with pytest.raises(BadInput) as empty:
            entry_list({field: lines}, field, case["kind"])
        assert empty.value.details == {field: "empty"}
        return
    got = entry_list({field: lines}, field, case["kind"])
    assert [e for e in got if entries.accepted(e, case["kind"])] == case["entries"]
    assert [e for e in got if not entries.accepted(e, case["kind"])] == [
        i["entry"] for i in case["invalid"]
    ]


def sent(platform: Any, endpoint: str, field: str) -> list[str]:
    return [e for r in platform.requests if r.endpoint == endpoint for e in r.body[field]]


def test_check_access_and_invite_read_pasted_forms_and_never_send_a_fragment(backend, platform):
    lines = FORMS["text"].split("\n")
    checked = backend.call("checkAccess", {"emails": lines}).get_json()
    assert checked["invalid"] == ["new hire301@example.com"]
    assert checked["withoutAccess"] == FORMS["entries"] and checked["withAccess"] == []
    assert sent(platform, "check-access", "emails") == FORMS["entries"]  # "hire301@…" never

    job = backend.call("inviteEmails", {"emails": lines, "dryRun": True}).get_json()["job"]
    deadline = time.monotonic() + 30
    while job["state"] != "done" and time.monotonic() < deadline:
        job = backend.call("getJob", {"jobId": job["id"]}).get_json()["job"]
    outcomes = {i["email"]: i["outcome"] for i in job["items"]}
    assert outcomes == {
        "new hire301@example.com": "invalid",
        **dict.fromkeys(FORMS["entries"], "pending"),
    }
    assert sent(platform, "check-access", "emails") == FORMS["entries"] * 2


def test_lookup_reads_a_pasted_header_and_answers_a_spaced_id_as_not_found(backend, platform):
    site = platform.installation.site
    a, b = site.user_ids[:2]
    answer = backend.call("lookupUsers", {"accountIds": ["Account ID", f"{a}, {b}", "Jane Doe"]})
    body = answer.get_json()
    assert [u["accountId"] for u in body["users"]] == [a, b]
    assert body["notFound"] == ["Jane Doe"] and body["failed"] == []
    assert sent(platform, "users-bulk", "accountIds") == [a, b]


def test_a_webhook_body_is_read_by_the_same_rules(backend, platform):
    answer = backend.call("rotateWebhookSecret", {}).get_json()
    body = json.dumps(
        {"type": "access.invite", "data": {"emails": FORMS["text"].split("\n"), "dryRun": True}}
    )
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(tz=UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(answer["secret"]).sign(msg_id, now, body),
        "content-type": "application/json",
    }
    path = "/webhooks/" + answer["url"].rsplit("/webhooks/", 1)[1]
    delivered = backend.client.post(path, data=body, headers=headers)
    assert delivered.status_code == 202
    job = backend.call("getJob", {"jobId": delivered.get_json()["jobId"]}).get_json()["job"]
    assert [i["email"] for i in job["items"]] == entries.parse(FORMS["text"], "email").written
    assert {i["email"] for i in job["items"]} == {
        *FORMS["entries"],
        "new hire301@example.com",
    }
