"""The simulated Confluence endpoints, over real HTTP, checked against schemas from the OpenAPI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]

from simulator import Installation, Platform
from tests.conftest import APP_ID

SCHEMAS = json.loads((Path(__file__).parents[1] / "schemas" / "confluence.json").read_text())
BULK = "/wiki/api/v2/users-bulk"
CHECK = "/wiki/api/v2/user/access/check-access-by-email"
INVITE = "/wiki/api/v2/user/access/invite-by-email"
CURRENT = "/wiki/rest/api/user/current"


def validate(name: str, instance: Any) -> None:
    Draft202012Validator(SCHEMAS["$defs"][name]).validate(instance)


@pytest.fixture()
def sim(platform: Platform) -> Platform:
    """The shared simulated platform (tests/conftest.py), served on 127.0.0.1."""
    return platform


def post(p: Platform, inst: Installation, path: str, body: Any, account: str | None = None):
    token = p.user_token(inst, account or inst.site.admin_id)
    headers = {"Authorization": f"Bearer {token}"}
    return requests.post(inst.api_base_url + path, json=body, headers=headers, timeout=5)


def test_seeded_site_has_the_promised_population(sim: Platform) -> None:
    site = sim.installation.site
    n = sim.seed_users
    assert n == 40 and len(site.user_ids) == n
    assert len(site.external_ids) == 2 and len(site.closed_ids) == 2
    assert len(site.users) == n + 2 + 2 + 1
    assert site.hidden_email_ids and site.inactive_ids
    assert all(site.users[u]["email"] == "" for u in site.hidden_email_ids)
    assert all(site.users[u]["accountStatus"] == "closed" for u in site.closed_ids)
    assert all(site.users[u]["isExternalCollaborator"] for u in site.external_ids)
    again = Platform(app_id=APP_ID, seed_users=n).installation
    assert again.site.users == site.users and again.id == sim.installation.id


def test_users_bulk_answers_valid_users_in_order_without_unknown_or_repeated_ids(sim: Platform):
    inst = sim.installation
    ids = [inst.site.user_ids[3], "no-such-account", *inst.site.closed_ids, inst.site.user_ids[3]]
    ids += inst.site.hidden_email_ids[:1] + [inst.site.admin_id]
    answer = post(sim, inst, BULK, {"accountIds": ids})
    assert answer.status_code == 200
    body = answer.json()
    validate("UsersBulkResult", body)
    for user in body["results"]:
        validate("User", user)
        assert set(user) <= set(SCHEMAS["$defs"]["User"]["properties"])
    expected = [i for i in dict.fromkeys(ids) if i != "no-such-account"]
    assert [u["accountId"] for u in body["results"]] == expected
    base = inst.site.url + "/wiki"
    assert body["_links"] == {"base": base}
    assert answer.headers["Link"] == f'<{base}>; rel="base"'
    hidden = next(u for u in body["results"] if u["accountId"] in inst.site.hidden_email_ids)
    assert hidden["email"] == ""


@pytest.mark.parametrize(
    "body",
    [
        {"accountIds": []},
        {"accountIds": [f"id-{n}" for n in range(251)]},
        {"accountIds": "x"},
        {"accountIds": [1]},
        {},
        [],
        "text",
    ],
)
def test_users_bulk_rejects_bad_bodies_with_confluence_errors(sim: Platform, body: Any) -> None:
    answer = post(sim, sim.installation, BULK, body)
    assert answer.status_code == 400
    (err,) = answer.json()["errors"]
    assert err["status"] == 400 and err["code"] and err["title"] and err["detail"]


def test_users_bulk_takes_250_ids_and_rejects_malformed_json(sim: Platform) -> None:
    inst = sim.installation
    ids = [inst.site.admin_id] + [f"unknown-{n}" for n in range(249)]
    assert post(sim, inst, BULK, {"accountIds": ids}).json()["results"][0]["accountId"] == ids[0]
    token = sim.user_token(inst, inst.site.admin_id)
    answer = requests.post(
        inst.api_base_url + BULK,
        data="{not json",
        timeout=5,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400 and answer.json()["errors"]


def test_external_collaborators_get_404_everywhere_but_user_current(sim: Platform) -> None:
    inst = sim.installation
    external = inst.site.external_ids[0]
    assert post(sim, inst, BULK, {"accountIds": [external]}, external).status_code == 404
    assert post(sim, inst, CHECK, {"emails": ["a@example.com"]}, external).status_code == 404
    assert post(sim, inst, INVITE, {"emails": ["a@example.com"]}, external).status_code == 404
    ordinary = inst.site.user_ids[0]
    assert post(sim, inst, CHECK, {"emails": ["a@example.com"]}, ordinary).status_code == 200


def test_unknown_expired_and_cross_site_tokens_get_401(sim: Platform) -> None:
    inst, other = sim.installation, sim.add_installation()
    assert other.cloud_id != inst.cloud_id and other.site.admin_id != inst.site.admin_id
    url = inst.api_base_url + BULK
    body = {"accountIds": [inst.site.admin_id]}
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {sim.user_token(inst, inst.site.admin_id, ttl=-1)}"},
        {"Authorization": f"Bearer {sim.user_token(other, other.site.admin_id)}"},
    ):
        answer = requests.post(url, json=body, headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["status"] == 401
    assert post(sim, other, BULK, body).json()["results"] == []  # ids of one site only
    mine = {"accountIds": [other.site.admin_id]}
    assert post(sim, other, BULK, mine).json()["results"][0]["accountId"] == other.site.admin_id


def test_check_access_sorts_emails_case_insensitively_in_the_callers_spelling(sim: Platform):
    inst = sim.installation
    having = inst.site.users_with_access_emails()[0]
    new = inst.site.sample_new_emails[0]
    emails = [having.upper(), new.title(), "not-an-email", "a b@example.com", new]
    answer = post(sim, inst, CHECK, {"emails": emails})
    assert answer.status_code == 200
    body = answer.json()
    validate("CheckAccessResult", body)
    assert body["emailsWithoutAccess"] == [new.title()]
    assert body["invalidEmails"] == ["not-an-email", "a b@example.com"]


def test_check_access_leaves_out_empty_lists_sometimes(sim: Platform) -> None:
    inst = sim.installation
    having = inst.site.users_with_access_emails()[:2]
    bodies = [post(sim, inst, CHECK, {"emails": having}).json() for _ in range(2)]
    assert {} in bodies and {"emailsWithoutAccess": [], "invalidEmails": []} in bodies
    sim.omit_empty = False
    assert post(sim, inst, CHECK, {"emails": having}).json()["invalidEmails"] == []


@pytest.mark.parametrize("path", [CHECK, INVITE])
@pytest.mark.parametrize("count", [0, 101])
def test_email_endpoints_take_1_to_100(sim: Platform, path: str, count: int) -> None:
    emails = [f"user{n}@example.com" for n in range(count)]
    answer = post(sim, sim.installation, path, {"emails": emails})
    assert answer.status_code == 400 and answer.json()["errors"][0]["status"] == 400
    assert post(sim, sim.installation, path, {"emails": emails[:100] or ["a@b.co"]}).ok


def test_invites_grant_access_after_the_delay(sim: Platform) -> None:
    inst = sim.installation
    new, having = inst.site.sample_new_emails[:2], inst.site.users_with_access_emails()[0]
    answer = post(sim, inst, INVITE, {"emails": [*new, having, "broken@"]})
    assert answer.status_code == 200 and answer.content in (b"", b"{}")
    assert sorted(inst.site.invited) == sorted(e.lower() for e in new)
    check = {"emails": new}
    assert post(sim, inst, CHECK, check).json()["emailsWithoutAccess"] == new
    time.sleep(0.1)
    assert post(sim, inst, CHECK, check).json().get("emailsWithoutAccess", []) == []
    assert set(new) <= set(inst.site.users_with_access_emails())


def test_disabled_api_answers_503_on_the_email_endpoints_only(sim: Platform) -> None:
    inst = sim.installation
    inst.site.api_disabled = True
    assert post(sim, inst, CHECK, {"emails": ["a@example.com"]}).status_code == 503
    assert post(sim, inst, INVITE, {"emails": ["a@example.com"]}).status_code == 503
    assert post(sim, inst, BULK, {"accountIds": [inst.site.admin_id]}).status_code == 200


def current(p: Platform, inst: Installation, token: str, expand: str = "operations"):
    return requests.get(
        inst.api_base_url + CURRENT,
        params={"expand": expand} if expand else None,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_user_current_reports_administer_only_for_the_site_admin(sim: Platform) -> None:
    inst = sim.installation
    admin = current(sim, inst, sim.user_token(inst, inst.site.admin_id)).json()
    assert admin["accountId"] == inst.site.admin_id
    assert {"operation": "administer", "targetType": "application"} in admin["operations"]
    for account in (inst.site.user_ids[0], inst.site.external_ids[0]):
        user = current(sim, inst, sim.user_token(inst, account)).json()
        assert user["accountId"] == account
        assert user["operations"] and all(op["operation"] == "use" for op in user["operations"])
    plain = current(sim, inst, sim.user_token(inst, inst.site.admin_id), expand="").json()
    assert "operations" not in plain
    app = current(sim, inst, sim.system_token(inst)).json()
    assert app["accountType"] == "app"
    assert all(op["operation"] != "administer" for op in app["operations"])
    assert current(sim, inst, "bogus").status_code == 401
