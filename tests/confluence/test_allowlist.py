"""The one allowlist rule (``access_desk.confluence.allowlist``) decides for everyone who sends a
token: FIT verification (the site of a call), the Confluence client (where a user's token goes),
offline tokens (where a minted token goes, and the gateway the system token goes to) and settings
(the URLs the system token goes to). Each of them agrees with ``is_allowed`` / ``on_allowlisted_host``
on the same URLs, the tricky spellings included."""

from __future__ import annotations

import pytest
import requests
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import rsa

from access_desk.confluence.allowlist import is_allowed, on_allowlisted_host
from access_desk.confluence.client import Client
from access_desk.confluence.errors import UntrustedHost
from access_desk.forge.invocation import AuthError
from access_desk.forge.offline_tokens import OfflineTokenError, OfflineTokens
from access_desk.settings import Settings, SettingsError
from access_desk.store import Store
from tests.forge.test_invocation import sign, verifier_for, with_base

PREFIX = ("https://api.atlassian.com/ex/confluence/",)
ALLOWED = [
    "https://api.atlassian.com/ex/confluence/c1",
    "HTTPS://API.Atlassian.COM:443/ex/confluence/c1/",
    "https://api.atlassian.com/ex/jira/../confluence/./c1",
]
REFUSED = [
    "https://api.atlassian.com/ex/jira/c1",
    "https://api.atlassian.com/ex/confluencex/c1",
    "https://api.atlassian.com/ex/confluence/../jira/c1",
    "https://api.atlassian.com.evil.example/ex/confluence/c1",
    "https://user@api.atlassian.com/ex/confluence/c1",
    "https://api.atlassian.com@evil.example/ex/confluence/c1",
    "https://api.atlassian.com/ex/confluence/%2e%2e/jira",
    "http://api.atlassian.com/ex/confluence/c1",
    "https://api.atlassian.com:8443/ex/confluence/c1",
]
CASES = [(url, True) for url in ALLOWED] + [(url, False) for url in REFUSED]


class NoNetwork(requests.Session):
    def request(self, *args: object, **kwargs: object) -> requests.Response:
        raise requests.ConnectionError("no network in this test")


@pytest.mark.parametrize(("url", "allowed"), CASES)
def test_the_rule(url: str, allowed: bool) -> None:
    assert is_allowed(url, PREFIX) is allowed


@pytest.mark.parametrize(("url", "allowed"), CASES)
def test_fit_verification_follows_the_rule(key: rsa.RSAPrivateKey, url: str, allowed: bool) -> None:
    verify = verifier_for(key, PREFIX).verify
    token = "Bearer " + sign(key, with_base(url))
    if allowed:
        assert verify(token).api_base_url == "https://api.atlassian.com/ex/confluence/c1"
    else:
        with pytest.raises(AuthError):
            verify(token)


@pytest.mark.parametrize(("url", "allowed"), CASES)
def test_the_client_follows_the_rule(url: str, allowed: bool) -> None:
    def build() -> Client:
        return Client(NoNetwork(), url, "t", allowlist=PREFIX)

    if allowed:
        build()
    else:
        with pytest.raises(UntrustedHost):
            build()


@pytest.mark.parametrize(("url", "allowed"), CASES)
def test_offline_tokens_follow_the_rule(tmp_path, url: str, allowed: bool) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}", Fernet.generate_key().decode())
    store.migrate()
    store.upsert_installation("i1", cloud_id="c1", api_base_url=url, system_token="system")
    installation = store.installation("i1")
    assert installation is not None
    tokens = OfflineTokens(
        NoNetwork(), "https://api.atlassian.com/graphql", store, allowlist=PREFIX
    )
    with pytest.raises(OfflineTokenError) as refused:
        tokens.token_for(installation, "557058:a")  # allowed: the exchange fails (no network)
    assert ("not allowlisted" in str(refused.value)) is not allowed


@pytest.mark.parametrize(
    ("url", "on_host"),
    [
        ("https://api.atlassian.com/graphql", True),
        ("HTTPS://API.ATLASSIAN.COM:443/graphql", True),
        ("https://api.atlassian.com/app/report-accounts/", True),
        ("https://api.atlassian.com.evil.example/graphql", False),
        ("https://user@api.atlassian.com/graphql", False),
        ("http://api.atlassian.com/graphql", False),
        ("https://api.atlassian.com:8443/graphql", False),
    ],
)
def test_where_the_system_token_goes_follows_the_host_rule(url: str, on_host: bool) -> None:
    assert on_allowlisted_host(url, PREFIX) is on_host
    fields = dict(
        app_id="ari:cloud:ecosystem::app/6a3e6c5e-0d4b-4a8e-9d54-3b2c1f0e7a11",
        secret_key=Fernet.generate_key().decode(),
        api_base_url_allowlist=PREFIX,
        graphql_url=url,
        allow_http=True,
    )
    if on_host:
        assert Settings(**fields).graphql_url == url  # type: ignore[arg-type]
    else:
        with pytest.raises(SettingsError, match="GRAPHQL_URL"):
            Settings(**fields)  # type: ignore[arg-type]
