"""The simulated points quota (``simulator.quota``): costs, pools, headers, 429s, the control API
and ``./dev --quota``."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from simulator import Installation, Meter, Platform, Quota
from simulator.quota import COSTS, Refusal, Ticket, cost_of, quota_from_flags
from tests.conftest import APP_ID

ROOT = Path(__file__).resolve().parents[2]
BULK = "/wiki/api/v2/users-bulk"
CHECK = "/wiki/api/v2/user/access/check-access-by-email"
INVITE = "/wiki/api/v2/user/access/invite-by-email"
CURRENT = "/wiki/rest/api/user/current"
START = 1_800_000_000.0  # a multiple of 60 and of 3600: the start of a window


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def serve(clock: Clock) -> Iterator[Any]:
    """``serve(quota)``: a platform metering ``quota`` on ``clock``, served on 127.0.0.1."""
    servers = []

    def start(quota: Quota | None, installations: int = 1) -> Platform:
        p = Platform(
            app_id=APP_ID, seed_users=12, invite_delay=0.05, quota=quota, quota_clock=clock
        )
        for _ in range(installations - 1):
            p.add_installation()
        servers.append(p.serve("127.0.0.1", 0))
        return p

    yield start
    for server in servers:
        server.stop()


def call(
    p: Platform, inst: Installation, path: str, body: Any = None, token: str | None = None
) -> requests.Response:
    token = token or p.user_token(inst, inst.site.admin_id)
    headers = {"Authorization": f"Bearer {token}"}
    if path == CURRENT:
        return requests.get(inst.api_base_url + path, headers=headers, timeout=5)
    return requests.post(inst.api_base_url + path, json=body, headers=headers, timeout=5)


def lookup(p: Platform, inst: Installation, count: int) -> requests.Response:
    """users-bulk for ``count`` known users (plus an unknown id, which is free)."""
    ids = [inst.site.admin_id, *inst.site.user_ids][:count]
    return call(p, inst, BULK, {"accountIds": [*ids, "no-such-account"]})


def remaining(answer: requests.Response) -> int | None:
    """The points left as the answer's ``RateLimit`` says them (None: r not sent)."""
    state = answer.headers.get("RateLimit") or answer.headers.get("Beta-RateLimit") or ""
    for param in state.split(";"):
        if param.startswith("r="):
            return int(param[2:])
    return None


def left(p: Platform, pool: int = 0) -> int:
    """The points left of a pool, as the meter knows them."""
    return int(p.meter.snapshot()["pools"][pool]["remaining"])


# -- the cost table and the quota ------------------------------------------------------------------


def test_cost_table_base_plus_two_per_identity_object_and_writes_base_only() -> None:
    assert cost_of("users-bulk", 250) == 501 and cost_of("users-bulk", 0) == 1
    assert cost_of("check-access", 100) == 201
    assert cost_of("invite", 100) == 1
    assert cost_of("user-current", 1) == 3
    assert set(COSTS["reads"]) == {"users-bulk", "check-access", "invite", "user-current"}
    # the other reading of Atlassian's table: a POST is a write, the base point only
    assert cost_of("users-bulk", 250, "writes") == 1 and cost_of("check-access", 100, "writes") == 1
    assert cost_of("user-current", 1, "writes") == 3


def test_quota_parses_points_per_seconds_and_refuses_nonsense() -> None:
    assert Quota.parse("6500/60") == Quota(6500, 60, "app")
    assert Quota.parse(" 65000 ", "site") == Quota(65000, 3600, "site")
    for bad in ("", "6500/0", "0/60", "-1/60", "a/60", "6500/1.5", "6500/60/2"):
        with pytest.raises(ValueError, match="POINTS/SECONDS"):
            Quota.parse(bad)
    with pytest.raises(ValueError, match="mode"):
        Quota(10, 60, "tenant")
    with pytest.raises(ValueError, match="spelling"):
        Quota(10, 60, spelling="x-beta")
    with pytest.raises(ValueError, match="costs"):
        Quota(10, 60, costs="free")


def test_dev_quota_flags() -> None:
    assert quota_from_flags(None, None) is None
    assert quota_from_flags("", None) == Quota(65000, 3600, "app")
    assert quota_from_flags("6500/60", None) == Quota(6500, 60, "app")
    assert quota_from_flags("6500/60", "site") == Quota(6500, 60, "site")
    assert quota_from_flags(None, "site") == Quota(65000, 3600, "site")
    assert quota_from_flags(None, None, "beta") == Quota(spelling="beta")
    assert quota_from_flags("10/8", None, None, "writes") == Quota(10, 8, costs="writes")
    with pytest.raises(ValueError):
        quota_from_flags("lots", None)


def test_dev_refuses_a_bad_quota_before_starting_anything() -> None:
    dev = [sys.executable, "-m", "scripts.dev"]  # as ./dev runs it, from the repository root

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)

    shown = run([*dev, "--help"])
    assert shown.returncode == 0 and "--quota [POINTS/SECONDS]" in shown.stdout
    assert "--quota-mode {app,site}" in shown.stdout
    assert "--quota-spelling {enforced,beta}" in shown.stdout
    assert "--quota-costs {reads,writes}" in shown.stdout
    bad = run([*dev, "--quota", "6500/0"])
    assert bad.returncode == 2 and "--quota: expected POINTS/SECONDS" in bad.stderr
    mode = run([*dev, "--quota-mode", "x"])
    assert mode.returncode == 2 and "--quota-mode" in mode.stderr


# -- the meter alone -------------------------------------------------------------------------------


def test_meter_is_off_until_configured(clock: Clock) -> None:
    meter = Meter(clock=clock)
    assert not meter.enabled and meter.admit("i", "site", "users-bulk") is None
    assert meter.snapshot()["enabled"] is False and meter.reading("site") is None
    meter.configure(Quota(10, 60))
    ticket = meter.admit("i", "site", "users-bulk")
    assert isinstance(ticket, Ticket)
    reading = meter.settle(ticket, 2)
    assert reading is not None and not isinstance(reading, Refusal) and reading.remaining == 5
    meter.configure(None)
    assert meter.settle(ticket, 2) is None and meter.snapshot()["total"]["points"] == 0


def test_a_cost_that_does_not_fit_is_refused_and_gives_the_base_back(clock: Clock) -> None:
    meter = Meter(Quota(10, 60), clock)
    ticket = meter.admit("i", "site", "users-bulk")
    assert isinstance(ticket, Ticket)
    refused = meter.settle(ticket, 5)  # 11 points > 10
    assert isinstance(refused, Refusal) and refused.reading.remaining == 10
    clock.now += 20
    headers = refused.headers()
    assert headers["Retry-After"] == "60"  # the refusal was read at the window's start
    assert headers["RateLimit-Reason"] == "confluence-quota-global-based"
    assert meter.snapshot()["installations"]["i"] == {"points": 0, "requests": 0, "refused": 1}


def test_a_window_ending_between_admit_and_settle_charges_the_new_window(clock: Clock) -> None:
    meter = Meter(Quota(10, 60), clock)
    ticket = meter.admit("i", "site", "users-bulk")
    assert isinstance(ticket, Ticket)
    clock.now += 61
    reading = meter.settle(ticket, 1)
    assert reading is not None and not isinstance(reading, Refusal)
    assert reading.remaining == 7 and meter.spent_by("i") == 3


def test_concurrent_calls_never_overspend_the_pool(clock: Clock) -> None:
    meter = Meter(Quota(1000, 60), clock)
    accepted: list[int] = []

    def worker(n: int) -> None:
        for _ in range(200):
            ticket = meter.admit(f"inst-{n % 2}", "site", "user-current")
            if isinstance(ticket, Ticket) and not isinstance(meter.settle(ticket, 1), Refusal):
                accepted.append(1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snapshot = meter.snapshot()
    assert len(accepted) == 333 and snapshot["total"]["points"] == 999
    assert snapshot["total"]["requests"] == 333 and snapshot["total"]["refused"] == 1600 - 333
    assert snapshot["pools"] == [
        {
            "pool": "app",
            "policy": "global-app-quota",
            "limit": 1000,
            "remaining": 1,
            "spent": 999,
            "reset": "2027-01-15T08:01:00Z",
            "nearLimit": True,
        }
    ]


# -- over HTTP -------------------------------------------------------------------------------------


def test_metering_is_off_by_default(serve: Any) -> None:
    p = serve(None)
    answer = lookup(p, p.installation, 3)
    assert answer.status_code == 200
    assert not any(h.lower().startswith(("x-ratelimit", "beta-ratelimit")) for h in answer.headers)
    assert p.meter.snapshot()["installations"] == {}


def test_every_answer_carries_the_quota_and_burst_headers_r_only_past_80_percent(
    serve: Any, clock: Clock
) -> None:
    p = serve(Quota(100, 60))
    inst = p.installation
    first = lookup(p, inst, 3)  # 1 + 3 users x 2
    assert first.status_code == 200 and len(first.json()["results"]) == 3
    assert first.headers["RateLimit-Policy"] == '"global-app-quota";q=100;w=60'
    assert first.headers["RateLimit"] == '"global-app-quota";t=60'  # under 80% used: no r
    assert remaining(first) is None and left(p) == 93
    assert first.headers["X-RateLimit-Limit"] == "350"  # the burst limit, not the quota
    assert first.headers["X-RateLimit-Remaining"] == "349"
    assert "Beta-RateLimit" not in first.headers and "X-RateLimit-NearLimit" not in first.headers
    clock.now += 15
    emails = ["a@example.com", "A@Example.com", "b@example.com"]  # two distinct: 1 + 2 x 2
    checked = call(p, inst, CHECK, {"emails": emails})
    assert checked.status_code == 200 and left(p) == 88
    assert checked.headers["RateLimit"] == '"global-app-quota";t=45'
    invited = call(p, inst, INVITE, {"emails": ["new.one@example.com", "new.two@example.com"]})
    assert invited.status_code == 200 and left(p) == 87  # a write: the base only
    me = call(p, inst, CURRENT)
    assert me.status_code == 200 and left(p) == 84
    lookup(p, inst, 13)  # 27 points: 57 left
    lookup(p, inst, 13)  # 30 left
    past = lookup(p, inst, 3)  # 7 points: 23 left, 77 used
    assert remaining(past) is None
    near = lookup(p, inst, 3)  # 16 left: 84 used, past 80%: r is said, and near the limit
    assert near.headers["RateLimit"] == '"global-app-quota";r=16;t=45'
    assert near.headers["X-RateLimit-NearLimit"] == "true"
    tally = p.meter.snapshot()["installations"][inst.id]
    assert tally == {"points": 84, "requests": 8, "refused": 0}


def test_the_beta_spelling_and_post_as_write_charging(serve: Any) -> None:
    p = serve(Quota(10, 60, spelling="beta", costs="writes"))
    inst = p.installation
    answer = lookup(p, inst, 5)  # a POST: the base point only
    assert answer.headers["Beta-RateLimit-Policy"] == '"global-app-quota";q=10;w=60'
    assert answer.headers["Beta-RateLimit"] == '"global-app-quota";t=60'
    assert "RateLimit" not in answer.headers and left(p) == 9
    for _ in range(8):
        answer = call(p, inst, CHECK, {"emails": ["x@example.com", "y@example.com"]})
    assert answer.headers["Beta-RateLimit"] == '"global-app-quota";r=1;t=60'
    assert answer.headers["X-Beta-RateLimit-NearLimit"] == "true"
    call(p, inst, INVITE, {"emails": ["z@example.com"]})
    refused = call(p, inst, INVITE, {"emails": ["w@example.com"]})
    assert refused.status_code == 429
    assert refused.headers["X-Beta-RateLimit-Reason"] == "confluence-quota-global-based"
    assert refused.headers["Beta-RateLimit"] == '"global-app-quota";r=0;t=60'


def test_the_burst_limit_is_per_site_per_second(serve: Any, clock: Clock) -> None:
    p = serve(Quota(1000, 60, burst=2), installations=2)
    one, two = p.installations
    assert call(p, one, CURRENT).headers["X-RateLimit-Remaining"] == "1"
    assert call(p, one, CURRENT).headers["X-RateLimit-Remaining"] == "0"
    burst = call(p, one, CURRENT)
    assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
    assert burst.headers["X-RateLimit-Remaining"] == "0"
    assert "RateLimit-Reason" not in burst.headers and "RateLimit" not in burst.headers
    assert call(p, two, CURRENT).status_code == 200  # another site's second is its own
    clock.now += 1
    assert call(p, one, CURRENT).status_code == 200
    assert p.meter.snapshot()["burstRefused"] == 1


def test_errors_are_free_and_unknown_tokens_are_not_metered(serve: Any) -> None:
    p = serve(Quota(100, 60))
    inst = p.installation
    bad = call(p, inst, BULK, {"accountIds": "not a list"})
    assert bad.status_code == 400 and "RateLimit" in bad.headers and left(p) == 100
    p.faults.add("users-bulk", "503")
    unavailable = lookup(p, inst, 2)
    assert unavailable.status_code == 503 and "RateLimit" not in unavailable.headers
    stranger = call(p, inst, BULK, {"accountIds": ["x"]}, token="not-a-token")
    assert stranger.status_code == 401 and "RateLimit" not in stranger.headers
    assert p.meter.snapshot()["total"] == {"points": 0, "requests": 0, "refused": 0}


def test_the_app_pool_is_shared_by_every_installation(serve: Any) -> None:
    p = serve(Quota(100, 60), installations=2)
    one, two = p.installations
    lookup(p, one, 5)
    assert left(p) == 89
    second = lookup(p, two, 2)
    assert left(p) == 84
    assert second.headers["RateLimit-Policy"] == '"global-app-quota";q=100;w=60'
    snapshot = p.meter.snapshot()
    assert snapshot["installations"][one.id]["points"] == 11
    assert snapshot["installations"][two.id]["points"] == 5
    assert [pool["pool"] for pool in snapshot["pools"]] == ["app"]
    assert snapshot["pools"][0]["remaining"] == 84


def test_site_mode_gives_each_site_its_own_pool(serve: Any) -> None:
    p = serve(Quota(100, 60, "site"), installations=2)
    one, two = p.installations
    lookup(p, one, 5)
    second = lookup(p, two, 2)
    assert second.headers["RateLimit-Policy"] == '"tenant-app-quota";q=100;w=60'
    assert second.headers["RateLimit"] == '"tenant-app-quota";t=60'
    pools = {pool["pool"]: pool["remaining"] for pool in p.meter.snapshot()["pools"]}
    assert pools == {one.cloud_id: 89, two.cloud_id: 95}


def test_a_spent_pool_answers_429_with_retry_after_and_reason(serve: Any, clock: Clock) -> None:
    p = serve(Quota(20, 60), installations=2)
    one, two = p.installations
    assert remaining(lookup(p, one, 9)) == 1  # 19 points
    clock.now += 42.5
    refused = lookup(p, two, 1)  # 3 points > 1 left
    assert refused.status_code == 429 and refused.json()["errors"][0]["status"] == 429
    assert refused.headers["Retry-After"] == "18"
    assert refused.headers["RateLimit-Reason"] == "confluence-quota-global-based"
    assert refused.headers["RateLimit"] == '"global-app-quota";r=0;t=18'
    assert "RateLimit-Policy" not in refused.headers  # as vendors saw it once r is 0
    assert refused.headers["X-RateLimit-NearLimit"] == "true" and left(p) == 1
    assert refused.headers["X-RateLimit-Reset"] == "2027-01-15T08:01:00Z"
    invited = call(p, two, INVITE, {"emails": ["late@example.com"]})  # the base fits
    assert invited.status_code == 200 and remaining(invited) == 0
    again = call(p, two, INVITE, {"emails": ["later@example.com"]})
    assert again.status_code == 429 and left(p) == 0
    assert "later@example.com" not in two.site.invited  # refused before it happened
    statuses = [r.status for r in p.requests]
    assert statuses == [200, 429, 200, 429]
    snapshot = p.meter.snapshot()
    assert snapshot["installations"][two.id] == {"points": 1, "requests": 1, "refused": 2}
    assert snapshot["total"] == {"points": 20, "requests": 2, "refused": 2}


def test_site_mode_refusals_name_the_tenant_quota(serve: Any) -> None:
    p = serve(Quota(5, 60, "site"), installations=2)
    one, two = p.installations
    refused = lookup(p, one, 3)
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Reason"] == "confluence-quota-tenant-based"
    assert refused.headers["RateLimit"] == '"tenant-app-quota";r=0;t=60'
    assert lookup(p, two, 2).status_code == 200  # the other site's pool is untouched


def test_refused_calls_cost_nothing_and_the_next_window_restores_the_pool(
    serve: Any, clock: Clock
) -> None:
    p = serve(Quota(30, 60))
    inst = p.installation
    lookup(p, inst, 10)
    assert left(p) == 9
    for _ in range(3):
        assert lookup(p, inst, 5).status_code == 429  # 11 points each, never taken
    assert remaining(lookup(p, inst, 4)) == 0  # the 9 points left are still all there
    clock.now += 59.9
    assert lookup(p, inst, 1).headers["Retry-After"] == "1"
    clock.now += 0.1
    renewed = lookup(p, inst, 10)
    assert renewed.status_code == 200 and left(p) == 9
    assert renewed.headers["RateLimit"] == '"global-app-quota";t=60'  # a new window
    assert p.meter.snapshot()["installations"][inst.id] == {
        "points": 51,
        "requests": 3,
        "refused": 4,
    }


def test_windows_end_at_the_clocks_multiples_of_the_window(serve: Any, clock: Clock) -> None:
    # Turned on ten seconds before the hour, an hourly pool ends at the hour, as Confluence's do.
    clock.now = START + 3590
    p = serve(Quota(30, 3600))
    inst = p.installation
    first = lookup(p, inst, 10)
    assert left(p) == 9 and first.headers["RateLimit"] == '"global-app-quota";t=10'
    refused = lookup(p, inst, 10)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
    clock.now += 10  # the top of the hour: a whole new pool
    lookup(p, inst, 10)
    assert left(p) == 9


# -- the control API -------------------------------------------------------------------------------


def control(p: Platform, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(method, f"{p.url}/_sim{path}", json=body, timeout=5)


def test_control_api_turns_the_meter_on_reads_it_spends_and_stops(serve: Any) -> None:
    p = serve(None, installations=2)
    one, two = p.installations
    assert control(p, "GET", "/quota").json()["enabled"] is False
    assert control(p, "GET", "/state").json()["quota"] is None
    turned = control(p, "PUT", "/quota", {"points": 6500, "seconds": 60})
    assert turned.status_code == 200 and turned.json()["quota"] == {
        "points": 6500,
        "seconds": 60,
        "mode": "app",
        "spelling": "enforced",
        "costs": "reads",
    }
    assert control(p, "GET", "/state").json()["quota"]["points"] == 6500
    lookup(p, one, 4)
    assert left(p) == 6491
    spent = control(p, "POST", "/quota/spend", {"points": 5500, "installationId": two.id})
    assert spent.status_code == 200 and spent.json()["remaining"] == 991
    assert spent.json()["nearLimit"] is True
    read = control(p, "GET", "/quota").json()
    assert read["installations"] == {one.id: {"points": 9, "requests": 1, "refused": 0}}
    assert read["outside"] == 5500 and read["pools"][0]["spent"] == 5509
    all_of_it = control(p, "POST", "/quota/spend", {"points": 10**6}).json()
    assert all_of_it["remaining"] == 0
    assert lookup(p, two, 1).status_code == 429
    last = control(p, "DELETE", "/quota").json()
    assert last["total"] == {"points": 9, "requests": 1, "refused": 1}
    assert lookup(p, two, 1).status_code == 200 and not p.meter.enabled
    assert control(p, "PUT", "/quota", {"mode": "site", "spelling": "beta"}).json()["quota"] == {
        "points": 65000,
        "seconds": 3600,
        "mode": "site",
        "spelling": "beta",
        "costs": "reads",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"points": 0},
        {"points": "lots"},
        {"points": 6500.5},
        {"seconds": -1},
        {"seconds": True},
        {"mode": "tenant"},
        {"spelling": "x"},
        {"costs": "free"},
        ["not", "an", "object"],
    ],
)
def test_control_api_refuses_a_bad_quota(serve: Any, body: object) -> None:
    p = serve(None)
    answer = control(p, "PUT", "/quota", body)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_input"
    assert not p.meter.enabled


def test_control_api_spend_needs_metering_and_a_whole_number(serve: Any) -> None:
    p = serve(None)
    off = control(p, "POST", "/quota/spend", {"points": 5})
    assert off.status_code == 400 and "off" in off.json()["message"]
    control(p, "PUT", "/quota", {"points": 10, "seconds": 60})
    for bad in ({"points": -1}, {"points": "5"}, {}, {"points": 5, "installationId": "nope"}):
        assert control(p, "POST", "/quota/spend", bad).status_code == 400
    assert p.meter.snapshot()["outside"] == 0
