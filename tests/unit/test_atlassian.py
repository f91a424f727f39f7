"""atlassian.OfflineTokens against the simulated GraphQL gateway on loopback."""

from __future__ import annotations

import pytest
import requests

from atlassian import MUTATION, OfflineTokenError, OfflineTokens
from confluence import Client
from records import Installation
from simulator import Platform, RequestRecord
from store import Store
from tests.stores import Clock


def stored(store: Store, platform: Platform, clock: Clock, *, token: bool = True) -> Installation:
    inst = platform.installation
    store.upsert_installation(
        inst.id,
        cloud_id=inst.cloud_id,
        api_base_url=inst.api_base_url,
        system_token=platform.system_token(inst) if token else None,
        system_token_expires_at=clock() + 7200 if token else None,
    )
    found = store.installation(inst.id)
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


def test_the_allowlist_check_guards_where_the_token_would_go(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    installation = stored(store, platform, clock)
    tokens = OfflineTokens(
        session, platform.graphql_url, store, clock=clock, allowlist_check=lambda url: False
    )
    with pytest.raises(OfflineTokenError, match="allowlisted"):
        tokens.token_for(installation, platform.installation.site.admin_id)
    assert graphql_calls(platform) == []
