"""atlassian.OfflineTokens against the simulated GraphQL gateway on loopback."""

from __future__ import annotations

import pytest
import requests

from access_desk.confluence.client import Client
from access_desk.forge.offline_tokens import MUTATION, OfflineTokenError, OfflineTokens
from access_desk.store import Store
from access_desk.store.records import Installation
from simulator import Platform, RequestRecord
from tests.support.simulated import store_installation
from tests.support.stores import Clock


def stored(store: Store, platform: Platform, clock: Clock, *, token: bool = True) -> Installation:
    found = store.installation(
        store_installation(platform, store, clock() + 7200 if token else None)
    )
    assert found is not None
    return found


def graphql_calls(platform: Platform) -> list[RequestRecord]:
    return [r for r in platform.requests if r.endpoint == "graphql"]


def test_mints_a_working_user_token_and_caches_it(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    installation = stored(store, platform, clock)
    admin = platform.installation.site.admin_id
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)

    token = tokens.token_for(installation, admin)
    assert tokens.token_for(installation, admin) == token  # cached
    [call] = graphql_calls(platform)
    assert call.account_id == "system"
    assert call.body == {
        "query": MUTATION,
        "variables": {
            "input": {
                "contextIds": [f"ari:cloud:confluence::site/{installation.cloud_id}"],
                "userId": admin,
            }
        },
    }
    client = Client(
        session, installation.api_base_url, token, allowlist=(platform.allowlist_prefix,)
    )
    assert client.is_admin()
    assert platform.requests[-1].account_id == admin
    assert token not in repr(tokens)

    other = platform.installation.site.user_ids[0]
    assert tokens.token_for(installation, other) != token  # cached per user
    assert len(graphql_calls(platform)) == 2


def test_a_token_is_renewed_five_minutes_before_it_expires(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    platform.offline_ttl = 900
    installation = stored(store, platform, clock)
    admin = platform.installation.site.admin_id
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    first = tokens.token_for(installation, admin)
    clock.advance(900 - 301)
    assert tokens.token_for(installation, admin) == first
    clock.advance(2)
    assert tokens.token_for(installation, admin) != first
    assert len(graphql_calls(platform)) == 2


def test_no_token_without_a_usable_system_token(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    admin = platform.installation.site.admin_id
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    with pytest.raises(OfflineTokenError, match="no system token"):
        tokens.token_for(stored(store, platform, clock, token=False), admin)
    installation = stored(store, platform, clock)
    clock.advance(7200)
    with pytest.raises(OfflineTokenError, match="expired"):
        tokens.token_for(installation, admin)
    assert graphql_calls(platform) == []


@pytest.mark.parametrize("fault", ["500", "drop", "refused"])
def test_a_failed_exchange_raises_without_leaking_the_token(
    platform: Platform, store: Store, session: requests.Session, clock: Clock, fault: str
) -> None:
    installation = stored(store, platform, clock)
    assert installation.system_token is not None
    site = platform.installation.site
    account = site.closed_ids[0] if fault == "refused" else site.admin_id
    if fault != "refused":
        platform.faults.add("graphql", fault)
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    with pytest.raises(OfflineTokenError) as raised:
        tokens.token_for(installation, account)
    assert installation.system_token not in str(raised.value)
    if fault == "refused":
        assert "Unknown user" in str(raised.value)
    assert store.offline_token(installation.installation_id, account) is None


def test_the_allowlist_guards_where_the_tokens_would_go(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    installation = stored(store, platform, clock)
    admin = platform.installation.site.admin_id
    elsewhere = OfflineTokens(
        session, platform.graphql_url, store, clock=clock, allowlist=("https://elsewhere.example/",)
    )
    with pytest.raises(OfflineTokenError, match="API base URL is not allowlisted"):
        elsewhere.token_for(installation, admin)
    off_host = OfflineTokens(
        session,
        platform.graphql_url.replace("127.0.0.1", "localhost"),
        store,
        clock=clock,
        allowlist=(platform.allowlist_prefix,),
    )
    with pytest.raises(OfflineTokenError, match="GRAPHQL_URL is not on an API_BASE_URL_ALLOWLIST"):
        off_host.token_for(installation, admin)
    assert graphql_calls(platform) == []
    health = store.installation_health(installation.installation_id)
    assert health is not None and "GRAPHQL_URL" in (health.offline_token_error or "")
    allowed = OfflineTokens(
        session, platform.graphql_url, store, clock=clock, allowlist=(platform.allowlist_prefix,)
    )
    assert allowed.token_for(installation, admin)
    health = store.installation_health(installation.installation_id)
    assert health is not None and health.offline_token_error is None


def contexts(platform: Platform) -> list[str]:
    return [r.body["variables"]["input"]["contextIds"][0] for r in graphql_calls(platform)]


def test_falls_back_to_the_workspace_form_and_remembers_it(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    platform.context_ari = "workspace"  # the site form fails as the community thread reports
    installation = stored(store, platform, clock)
    site, cloud = platform.installation.site, installation.cloud_id
    workspace = f"ari:cloud:confluence:{cloud}:workspace/{cloud}"
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)

    token = tokens.token_for(installation, site.admin_id)
    assert contexts(platform) == [f"ari:cloud:confluence::site/{cloud}", workspace]
    assert [r.status for r in graphql_calls(platform)] == [200, 200]
    client = Client(
        session, installation.api_base_url, token, allowlist=(platform.allowlist_prefix,)
    )
    assert client.is_admin()
    health = store.installation_health(installation.installation_id)
    assert health is not None and health.context_form == "workspace"

    platform.clear_requests()
    tokens.token_for(installation, site.user_ids[0])  # the remembered form goes first
    assert contexts(platform) == [workspace]


def test_the_site_form_is_remembered_too_and_tried_first(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    installation = stored(store, platform, clock)
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    tokens.token_for(installation, platform.installation.site.admin_id)
    cloud = installation.cloud_id
    assert contexts(platform) == [f"ari:cloud:confluence::site/{cloud}"]
    assert store.context_form(installation.installation_id) == "site"


def test_when_both_forms_are_refused_the_gateway_says_why(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    platform.context_ari = "none"
    installation = stored(store, platform, clock)
    admin = platform.installation.site.admin_id
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    with pytest.raises(OfflineTokenError) as raised:
        tokens.token_for(installation, admin)
    expected = (
        "the token exchange was refused: "
        "site form: Could not load permissions for app user; "
        "workspace form: Could not load permissions for app user"
    )
    assert str(raised.value) == expected
    assert len(graphql_calls(platform)) == 2
    health = store.installation_health(installation.installation_id)
    assert health is not None
    assert health.offline_token_error == expected and health.offline_token_error_at == clock()
    assert health.context_form is None
    assert store.offline_token(installation.installation_id, admin) is None


def test_a_server_error_does_not_try_the_other_form(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    installation = stored(store, platform, clock)
    platform.faults.add("graphql", "503")
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    with pytest.raises(OfflineTokenError, match="HTTP 503"):
        tokens.token_for(installation, platform.installation.site.admin_id)
    assert len(graphql_calls(platform)) == 1


def test_renew_drops_the_cached_token_and_mints_another(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    installation = stored(store, platform, clock)
    admin = platform.installation.site.admin_id
    iid = installation.installation_id
    store.save_offline_token(iid, admin, "usr.stale-from-an-old-simulator", clock() + 3000)
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    assert tokens.token_for(installation, admin) == "usr.stale-from-an-old-simulator"
    fresh = tokens.renew(installation, admin)
    assert fresh != "usr.stale-from-an-old-simulator"
    assert store.offline_token(iid, admin) == (fresh, clock() + platform.offline_ttl)
    assert len(graphql_calls(platform)) == 1
