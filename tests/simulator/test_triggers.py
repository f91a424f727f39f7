"""The simulator fires Forge's triggers and signed webhooks at a real (loopback) backend."""

from __future__ import annotations

import threading

import jwt
import pytest
import requests
from flask import request
from werkzeug.serving import make_server

from access_desk.app import create_app
from simulator.triggers import (
    LIFECYCLE_TRIGGER,
    SCHEDULED_TRIGGER,
    UNINSTALL_TRIGGER,
    Ticker,
    lifecycle,
    scheduled,
    send_webhook,
)


@pytest.fixture()
def served(settings, platform):
    app = create_app(settings)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    platform.remote_url = f"http://127.0.0.1:{httpd.server_port}"
    try:
        yield app
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.extensions["access_desk"].close()


def test_lifecycle_and_scheduled_reach_the_backend(served, platform):
    store = served.extensions["access_desk"].store
    assert lifecycle(platform, "avi:forge:installed:app") == {
        "status": 200,
        "body": {"status": "ok"},
    }
    assert store.installation(platform.installation.id).system_token
    assert scheduled(platform)["status"] == 200


def test_trigger_calls_carry_a_fit_as_forge_mints_it(served, platform):
    seen: list[dict[str, str]] = []

    def record() -> None:
        seen.append(dict(request.headers))

    served.before_request(record)
    lifecycle(platform, "avi:forge:installed:app")
    scheduled(platform)
    claims = [
        jwt.decode(h["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})
        for h in seen
    ]
    assert [c["app"]["module"] for c in claims] == [
        {"key": LIFECYCLE_TRIGGER[0], "type": LIFECYCLE_TRIGGER[1]},
        {"key": SCHEDULED_TRIGGER[0], "type": SCHEDULED_TRIGGER[1]},
    ]
    assert not any("principal" in c or "context" in c for c in claims)
    assert all("X-Forge-Oauth-System" in h and "X-Forge-Oauth-User" not in h for h in seen)


def test_ticker_sends_installed_at_start(served, platform):
    ticker = Ticker(platform, interval=3600)
    ticker.start()
    ticker.stop()
    store = served.extensions["access_desk"].store
    assert store.installation(platform.installation.id) is not None


def test_signed_webhook_from_the_simulator_and_its_control_api(served, platform):
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    rotated = requests.post(
        f"{platform.remote_url}/resolvers/rotateWebhookSecret", json={}, headers=headers, timeout=10
    ).json()
    answer = send_webhook(platform, rotated["secret"], ["a@newcomers.example"], dry_run=True)
    assert answer["status"] == 202 and answer["body"]["jobId"]
    via_api = requests.post(
        f"{platform.url}/_sim/webhooks",
        json={"secret": rotated["secret"], "emails": ["b@newcomers.example"]},
        timeout=10,
    ).json()
    assert via_api["status"] == 202
    wrong = send_webhook(platform, "whsec_" + "QUJD" * 8, ["c@newcomers.example"])
    assert wrong["status"] == 401
    bad = requests.post(f"{platform.url}/_sim/webhooks", json={"secret": "x"}, timeout=10)
    assert bad.status_code == 400


def test_the_pre_uninstall_trigger_from_the_control_api(served, platform):
    """./dev's control surface fires Forge's preUninstall call: the backend stops the
    installation; the simulated platform then drops its tokens and stops its scheduled triggers
    until an installed event."""
    seen: list[dict[str, str]] = []
    served.before_request(lambda: seen.append(dict(request.headers)))
    store = served.extensions["access_desk"].store
    inst = platform.installation
    lifecycle(platform, "avi:forge:installed:app")
    old = platform.system_token(inst)
    answer = requests.post(f"{platform.url}/_sim/triggers/uninstall", timeout=10).json()
    assert answer == {"status": 200, "body": {"status": "ok"}}
    assert store.is_uninstalled(inst.id)
    assert platform.tokens.lookup(old) is None and inst.id in platform.uninstalled
    claims = jwt.decode(
        seen[-1]["Authorization"].removeprefix("Bearer "), options={"verify_signature": False}
    )
    assert claims["app"]["module"] == {"key": UNINSTALL_TRIGGER[0], "type": UNINSTALL_TRIGGER[1]}
    assert "principal" not in claims and "X-Forge-Oauth-System" not in seen[-1]
    lifecycle(platform, "avi:forge:installed:app")
    assert not store.is_uninstalled(inst.id) and inst.id not in platform.uninstalled
