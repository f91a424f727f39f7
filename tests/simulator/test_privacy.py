"""The simulated personal data reporting API and the gateway's context ARI modes."""

from __future__ import annotations

import pytest
import requests

from access_desk.forge.offline_tokens import MUTATION
from simulator import Platform


def report(p: Platform, token: str, accounts: list[dict[str, str]]) -> requests.Response:
    return requests.post(
        p.personal_data_url,
        json={"accounts": accounts},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def account(account_id: str, at: str = "2025-01-01T00:00:00.000Z") -> dict[str, str]:
    return {"accountId": account_id, "updatedAt": at}


def test_only_the_apps_system_token_may_report(platform: Platform) -> None:
    inst = platform.installation
    user = platform.user_token(inst, inst.site.admin_id)
    for token in ("nope", user, platform.system_token(inst, ttl=-1)):
        answer = report(platform, token, [account(inst.site.admin_id)])
        assert answer.status_code == 401 and answer.json()["errors"][0]["status"] == 401
    assert platform.account_reports.reports == []


@pytest.mark.parametrize(
    "body",
    [
        {"accounts": []},
        {"accounts": [account(f"a{n}") for n in range(91)]},
        {"accounts": [{"accountId": "a"}]},
        {"accounts": [account("a", "yesterday")]},
        {"nothing": True},
    ],
)
def test_bad_bodies_get_400(platform: Platform, body: dict[str, object]) -> None:
    answer = requests.post(
        platform.personal_data_url,
        json=body,
        headers={"Authorization": f"Bearer {platform.system_token(platform.installation)}"},
        timeout=5,
    )
    assert answer.status_code == 400


def test_answers_closed_and_updated_accounts_and_records_each_report(platform: Platform) -> None:
    inst = platform.installation
    site, system = inst.site, platform.system_token(inst)
    quiet, changed, marked = site.user_ids[:3]
    batch = [account(a) for a in (quiet, changed, marked, site.closed_ids[0])] + [
        account(f"u{n}") for n in range(86)
    ]
    assert len(batch) == 90

    nothing = report(platform, system, [account(quiet)])
    assert nothing.status_code == 204 and nothing.content == b""

    control = f"{platform.url}/_sim/privacy/accounts"
    assert requests.put(control, json={"accountId": changed, "status": "updated"}, timeout=5).ok
    assert requests.put(control, json={"accountId": marked, "status": "closed"}, timeout=5).ok
    bad = requests.put(control, json={"accountId": marked, "status": "gone"}, timeout=5)
    assert bad.status_code == 400
    answer = report(platform, system, batch)
    assert answer.status_code == 200
    assert answer.json() == {
        "accounts": [
            {"accountId": changed, "status": "updated"},
            {"accountId": marked, "status": "closed"},
            {"accountId": site.closed_ids[0], "status": "closed"},
        ]
    }
    later = report(platform, system, [account(changed, "2999-01-01T00:00:00Z")])
    assert later.status_code == 204  # updated before the time we said we stored it

    state = requests.get(f"{platform.url}/_sim/privacy", timeout=5).json()
    assert state["marks"] == {changed: "updated", marked: "closed"}
    assert [len(r["accountIds"]) for r in state["reports"]] == [1, 90, 1]
    assert {r["installationId"] for r in state["reports"]} == {inst.id}
    assert [r.account_id for r in platform.requests if r.endpoint == "report-accounts"] == [
        "system"
    ] * 3
    assert requests.delete(f"{platform.url}/_sim/privacy", timeout=5).ok
    assert platform.account_reports.reports == []


def test_faults_apply_to_the_reporting_api(platform: Platform) -> None:
    platform.faults.add("report-accounts", "429", retry_after=30)
    inst = platform.installation
    answer = report(platform, platform.system_token(inst), [account(inst.site.admin_id)])
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "30"


def exchange(p: Platform, context: str) -> dict[str, object]:
    inst = p.installation
    answer = requests.post(
        p.graphql_url,
        json={
            "query": MUTATION,
            "variables": {"input": {"contextIds": [context], "userId": inst.site.admin_id}},
        },
        headers={"Authorization": f"Bearer {p.system_token(inst)}"},
        timeout=5,
    )
    result = answer.json()["data"]["offlineUserAuthToken"]
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize(
    ("mode", "site_works", "workspace_works"),
    [
        ("any", True, True),
        ("site", True, False),
        ("workspace", False, True),
        ("none", False, False),
    ],
)
def test_the_gateway_accepts_the_context_ari_forms_its_mode_allows(
    platform: Platform, mode: str, site_works: bool, workspace_works: bool
) -> None:
    cloud = platform.installation.cloud_id
    switched = requests.put(f"{platform.url}/_sim/switches", json={"contextAri": mode}, timeout=5)
    assert switched.json()["contextAri"] == mode == platform.context_ari
    for context, works in (
        (f"ari:cloud:confluence::site/{cloud}", site_works),
        (f"ari:cloud:confluence:{cloud}:workspace/{cloud}", workspace_works),
    ):
        result = exchange(platform, context)
        assert result["success"] is works
        if not works:
            assert result["errors"] == [{"message": "Could not load permissions for app user"}]
    other = "ari:cloud:confluence::site/another-cloud"
    assert exchange(platform, other)["success"] is False
    bad = requests.put(f"{platform.url}/_sim/switches", json={"contextAri": "maybe"}, timeout=5)
    assert bad.status_code == 400
