"""Isolated Cloud FITs (an ``icLabel`` claim, their own signing keys) are refused with a clear 401
``unsupported_environment`` unless ``FORGE_IC_JWKS_URLS`` names a key URL for that label; every
answer carries HSTS (Marketplace: at least a year)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from access_desk.app import create_app
from access_desk.settings import Settings, SettingsError
from simulator import Platform
from tests.conftest import Backend

HSTS = "max-age=31536000; includeSubDomains"


def call_with(backend: Backend, platform: Platform, fit: str, key: str = "whoami") -> Any:
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    headers["authorization"] = f"Bearer {fit}"
    return backend.client.post(f"/resolvers/{key}", json={}, headers=headers)


def test_an_ic_fit_without_configured_keys_is_refused_clearly(backend, platform):
    inst = platform.installation
    fit = platform.mint_fit(inst, inst.site.admin_id, ic_label="ic-gov-1")
    answer = call_with(backend, platform, fit)
    assert answer.status_code == 401
    body = answer.get_json()
    assert body["error"] == "unsupported_environment"
    assert "Isolated Cloud environment ic-gov-1" in body["message"]
    assert "FORGE_IC_JWKS_URLS" in body["message"]


@pytest.mark.parametrize("where", ["top", "app"])
def test_an_ic_label_anywhere_in_the_claims_is_never_verified_with_forges_keys(
    backend, platform, where
):
    inst = platform.installation
    claims = {"icLabel": "ic-x"} if where == "top" else {"app": {"icLabel": "ic-x"}}
    fit = platform.mint_fit(inst, inst.site.admin_id, claims=claims)  # signed by Forge's key
    answer = call_with(backend, platform, fit)
    assert answer.status_code == 401 and answer.get_json()["error"] == "unsupported_environment"


def test_an_ic_fit_verifies_with_the_keys_configured_for_its_label(settings, platform, sleeps):
    app = create_app(
        replace(settings, ic_jwks_urls=(("ic-gov-1", platform.ic_jwks_url("ic-gov-1")),)),
        sleep=sleeps,
    )
    backend = Backend(app.test_client(), platform)
    inst = platform.installation
    try:
        good = call_with(
            backend, platform, platform.mint_fit(inst, inst.site.admin_id, ic_label="ic-gov-1")
        )
        assert good.status_code == 200, good.get_json()
        assert good.get_json()["isAdmin"] is True
        diagnosis = call_with(
            backend,
            platform,
            platform.mint_fit(inst, inst.site.admin_id, ic_label="ic-gov-1"),
            "diagnose",
        ).get_json()
        fit_row = next(c for c in diagnosis["checks"] if c["name"] == "Forge invocation token")
        assert "Isolated Cloud environment ic-gov-1" in fit_row["detail"]
        # the label's keys verify only its own FITs: one signed by Forge's key is refused
        forged = platform.mint_fit(inst, inst.site.admin_id, claims={"icLabel": "ic-gov-1"})
        bad = call_with(backend, platform, forged)
        assert bad.status_code == 401 and bad.get_json()["error"] == "invalid_token"
        other = call_with(
            backend, platform, platform.mint_fit(inst, inst.site.admin_id, ic_label="ic-other")
        )
        assert other.get_json()["error"] == "unsupported_environment"
        plain = call_with(backend, platform, platform.mint_fit(inst, inst.site.admin_id))
        assert plain.status_code == 200  # commercial FITs still verify with Forge's keys
    finally:
        app.extensions["access_desk"].close()


def test_ic_jwks_urls_are_read_from_the_environment():
    base = {"FORGE_APP_ID": "6a3e6c5e-0d4b-4a8e-9d54-3b2c1f0e7a11", "SECRET_KEY": "A" * 43 + "="}
    found = Settings.from_env(
        base | {"FORGE_IC_JWKS_URLS": "ic-a=https://a.example/jwks.json, ic.b=https://b/j"}
    )
    assert found.ic_jwks_urls == (
        ("ic-a", "https://a.example/jwks.json"),
        ("ic.b", "https://b/j"),
    )
    for bad, said in [
        ("https://a.example/jwks.json", "must be label=URL"),
        ("ic a=https://a/j", "must be label=URL"),
        ("ic-a=https://a/j,ic-a=https://b/j", "given twice"),
        ("ic-a=ftp://a/j", "http(s) URL"),
        ("ic-a=http://a/j", "FORGE_IC_JWKS_URLS has an http:// URL"),
    ]:
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(base | {"FORGE_IC_JWKS_URLS": bad})
        assert said in str(caught.value), bad


def test_every_answer_carries_hsts(backend, platform):
    answers = [
        backend.call("whoami"),
        backend.client.post("/resolvers/whoami", json={}),  # 401
        backend.client.get("/healthz"),
        backend.client.get("/"),
        backend.client.post(f"/webhooks/{platform.installation.uuid}", data=b"{}"),
    ]
    assert [a.status_code for a in answers] == [200, 401, 200, 200, 401]
    assert all(a.headers["Strict-Transport-Security"] == HSTS for a in answers)
    assert answers[0].headers["Cache-Control"] == "no-cache, no-store"
    for answer in answers:
        answer.close()
