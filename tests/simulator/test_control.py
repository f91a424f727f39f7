"""The simulator's control API (``/_sim/``) and ``python -m simulator``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import requests

from simulator import Platform
from tests.conftest import APP_ID

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def sim(platform: Platform) -> Platform:
    """The shared simulated platform (tests/conftest.py), served on 127.0.0.1."""
    return platform


def control(p: Platform, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(method, f"{p.url}/_sim{path}", json=body, timeout=5)


def test_state_describes_urls_installations_and_sites(sim: Platform) -> None:
    state = control(sim, "GET", "/state").json()
    assert state["jwksUrl"] == sim.jwks_url and state["graphqlUrl"] == sim.graphql_url
    assert state["allowlistPrefix"] == sim.allowlist_prefix and state["appId"] == APP_ID
    (inst,) = state["installations"]
    assert inst["id"] == sim.installation.id and inst["cloudId"] == sim.installation.cloud_id
    assert inst["apiBaseUrl"] == sim.installation.api_base_url
    site = inst["site"]
    assert (
        site["adminId"] == sim.installation.site.admin_id
        and site["userCount"] == sim.seed_users + 5
    )
    assert set(site["sampleNewEmails"]).isdisjoint(site["emailsWithAccess"])
    added = control(sim, "POST", "/installations").json()
    assert added["cloudId"] != inst["cloudId"] and len(sim.installations) == 2


def test_tokens_work_against_the_simulated_platform(sim: Platform) -> None:
    inst = sim.installation
    admin = inst.site.admin_id
    minted = control(sim, "POST", "/tokens", {"accountId": admin, "lifetime": 600}).json()
    key = jwt.PyJWKClient(sim.jwks_url).get_signing_key_from_jwt(minted["fit"])
    claims = jwt.decode(minted["fit"], key, algorithms=["RS256"], audience=APP_ID)
    assert claims["principal"] == admin and claims["exp"] - claims["iat"] == 600
    assert minted["headers"]["x-forge-oauth-user"] == minted["userToken"]
    assert minted["headers"]["authorization"] == f"Bearer {minted['fit']}"
    me = requests.get(
        inst.api_base_url + "/wiki/rest/api/user/current",
        timeout=5,
        headers={"Authorization": f"Bearer {minted['userToken']}"},
    )
    assert me.json()["accountId"] == admin
    other = sim.add_installation()
    trigger = control(sim, "POST", "/tokens", {"installationId": other.uuid}).json()
    assert trigger["userToken"] is None and trigger["systemToken"]
    assert (
        jwt.decode(trigger["fit"], options={"verify_signature": False})["app"]["installationId"]
        == other.id
    )
    assert control(sim, "POST", "/tokens", {"installationId": "nope"}).status_code == 400


def test_faults_latency_switches_and_request_log(sim: Platform) -> None:
    inst = sim.installation
    fault = {"endpoint": "users-bulk", "kind": "429", "times": 1, "retryAfter": 9, "delayMs": 10}
    assert control(sim, "POST", "/faults", fault).status_code == 201
    assert control(sim, "GET", "/faults").json()["faults"][0]["retryAfter"] == 9
    token = sim.user_token(inst, inst.site.admin_id)
    answer = requests.post(
        inst.api_base_url + "/wiki/api/v2/users-bulk",
        json={"accountIds": ["x"]},
        timeout=5,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "9"
    log = control(sim, "GET", "/requests").json()["requests"]
    assert log[0]["accountId"] == inst.site.admin_id and log[0]["status"] == 429
    assert token not in json.dumps(log)
    assert control(sim, "DELETE", "/requests").ok and sim.requests == []
    control(sim, "POST", "/faults", {"endpoint": "*", "kind": "500", "times": None})
    assert control(sim, "DELETE", "/faults").json() == {"cleared": 1}
    assert control(sim, "POST", "/faults", {"endpoint": "x", "kind": "429"}).status_code == 400
    assert control(sim, "PUT", "/latency", {"ms": 25}).json() == {"ms": 25}
    assert sim.latency == 0.025
    assert control(sim, "PUT", "/latency", {"ms": "fast"}).status_code == 400
    control(sim, "PUT", "/switches", {"nearLimit": True, "apiDisabled": True})
    assert sim.near_limit and inst.site.api_disabled
    assert control(sim, "PUT", "/switches", {"nearLimit": "yes"}).status_code == 400


def test_python_m_simulator_serves_and_prints_its_urls() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--app-id",
            APP_ID,
            "--seed-users",
            "3",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "}\n":
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no output"
            lines.append(line)
        info = json.loads("".join(lines))
        assert info["FORGE_JWKS_URL"].startswith("http://127.0.0.1:")
        keys = requests.get(info["FORGE_JWKS_URL"], timeout=5).json()["keys"]
        assert keys[0]["kty"] == "RSA"
        assert requests.get(info["control"], timeout=5).json()["appId"] == APP_ID
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_the_platform_facts_of_a_real_install_can_be_played(sim: Platform) -> None:
    """Impersonation as the deployed manifest allows it, an Isolated Cloud FIT, a disabled email
    API (503 without Retry-After), the reporting cycle Atlassian asks for."""
    inst = sim.installation
    state = control(sim, "GET", "/state").json()
    assert state["impersonation"] == [
        "read:configuration:confluence",
        "read:content-details:confluence",
    ]  # as manifest.yml flags them
    assert control(sim, "PUT", "/switches", {"impersonation": []}).json()["impersonation"] == []
    assert control(sim, "PUT", "/switches", {"impersonation": "all"}).status_code == 400

    minted = control(sim, "POST", "/tokens", {"accountId": inst.site.admin_id, "icLabel": "ic-1"})
    fit = minted.json()["fit"]
    assert jwt.decode(fit, options={"verify_signature": False})["icLabel"] == "ic-1"
    forge_keys = jwt.PyJWKClient(sim.jwks_url)
    with pytest.raises(jwt.PyJWKClientError):
        forge_keys.get_signing_key_from_jwt(fit)  # not signed by Forge's usual keys
    ic_key = jwt.PyJWKClient(sim.ic_jwks_url("ic-1")).get_signing_key_from_jwt(fit)
    assert jwt.decode(fit, ic_key, algorithms=["RS256"], audience=APP_ID)["icLabel"] == "ic-1"
    assert control(sim, "POST", "/tokens", {"icLabel": ""}).status_code == 400

    control(sim, "PUT", "/switches", {"apiDisabled": True})
    disabled = requests.post(
        inst.api_base_url + "/wiki/api/v2/user/access/check-access-by-email",
        json={"emails": ["a@b.co"]},
        headers={"Authorization": f"Bearer {sim.user_token(inst, inst.site.admin_id)}"},
        timeout=5,
    )
    assert disabled.status_code == 503 and "Retry-After" not in disabled.headers

    cycle = requests.put(f"{sim.url}/_sim/privacy/cycle", json={"cyclePeriod": "P3D"}, timeout=5)
    assert cycle.json()["cyclePeriod"] == "P3D" and sim.account_reports.cycle_period == "P3D"


def test_offline_tokens_need_the_manifests_impersonation_flag(sim: Platform) -> None:
    inst = sim.installation
    system = sim.system_token(inst)

    def mint() -> dict[str, object]:
        body = {
            "query": "mutation { offlineUserAuthToken }",
            "variables": {
                "input": {
                    "contextIds": [f"ari:cloud:confluence::site/{inst.cloud_id}"],
                    "userId": inst.site.admin_id,
                }
            },
        }
        headers = {"Authorization": f"Bearer {system}"}
        answer = requests.post(sim.graphql_url, json=body, headers=headers, timeout=5).json()
        result: dict[str, object] = answer["data"]["offlineUserAuthToken"]
        return result

    def call(token: str, path: str, body: object = None) -> requests.Response:
        method = "POST" if body is not None else "GET"
        return requests.request(
            method,
            inst.api_base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )

    sim.impersonation = frozenset({"read:configuration:confluence"})
    token = mint()["authToken"]["token"]  # type: ignore[index]
    checked = call(token, "/wiki/api/v2/user/access/check-access-by-email", {"emails": ["a@b.co"]})
    assert checked.status_code == 200
    refused = call(token, "/wiki/rest/api/user/current")  # its scope is not flagged
    assert refused.status_code == 401 and "scope does not match" in refused.json()["message"]
    user = call(sim.user_token(inst, inst.site.admin_id), "/wiki/rest/api/user/current")
    assert user.status_code == 200  # a signed-in user's token needs no impersonation
    sim.impersonation = frozenset()
    refusal = mint()
    assert refusal["success"] is False and "impersonate" in str(refusal["errors"])
