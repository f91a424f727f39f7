"""Offline user tokens: acting as a user with nobody in session (background and webhook jobs).

``OfflineTokens.token_for(installation, account_id)`` returns a user token for ``account_id`` on
that installation's site. Tokens are cached in the store (encrypted) per (installation, user) and
reused until 5 minutes before they expire; otherwise one is minted with Atlassian's GraphQL
mutation ``offlineUserAuthToken`` (PLATFORM.md), authorized by the installation's latest system
token. Nothing is retried here: the job worker tries again later.

Errors::

    OfflineTokenError   no system token stored, it expired, the API base URL is not allowed,
                        or the exchange failed (HTTP error, timeout, ``success: false``, bad body)

No token ever appears in a message, a log line or a repr.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from records import Installation
from store import Store

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 5 * 60
MUTATION = """
mutation forge_remote_offlineUserAuthToken($input: OfflineUserAuthTokenInput!) {
  offlineUserAuthToken(input: $input) { success errors { message } authToken { token ttl } }
}
""".strip()


class OfflineTokenError(Exception):
    """No offline user token can be had right now; the message never contains a token."""


class OfflineTokens:
    """Mints and caches offline user tokens (see the module docstring)."""

    def __init__(
        self,
        session: requests.Session,
        graphql_url: str,
        store: Store,
        *,
        allowlist_check: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.time,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._session = session
        self._url = graphql_url
        self._store = store
        self._allowed = allowlist_check
        self._clock = clock
        self._timeout = timeout_seconds

    def __repr__(self) -> str:
        return f"OfflineTokens(graphql_url={self._url!r})"

    def token_for(self, installation: Installation, account_id: str) -> str:
        """A user token for ``account_id``, cached until 5 minutes before it expires.

        ``allowlist_check`` (when given) must accept ``installation.api_base_url``, where the token
        will be sent; otherwise no token is minted.
        """
        if self._allowed is not None and not self._allowed(installation.api_base_url):
            raise OfflineTokenError("the installation's API base URL is not allowlisted")
        now = self._clock()
        cached = self._store.offline_token(installation.installation_id, account_id)
        if cached is not None and cached[1] - REFRESH_MARGIN_SECONDS > now:
            return cached[0]
        system = installation.system_token
        expires = installation.system_token_expires_at
        if not system:
            raise OfflineTokenError("no system token is stored for this installation yet")
        if expires is not None and expires <= now:
            raise OfflineTokenError("the stored system token has expired")
        token, ttl = self._mint(system, installation.cloud_id, account_id)
        self._store.save_offline_token(installation.installation_id, account_id, token, now + ttl)
        log.info(
            "offline token minted",
            extra={"installation": installation.installation_id, "account": account_id},
        )
        return token

    def _mint(self, system_token: str, cloud_id: str, account_id: str) -> tuple[str, float]:
        body = {
            "query": MUTATION,
            "variables": {
                "input": {
                    "contextIds": [f"ari:cloud:confluence::site/{cloud_id}"],
                    "userId": account_id,
                }
            },
        }
        try:
            response = self._session.post(
                self._url,
                json=body,
                headers={"Authorization": f"Bearer {system_token}", "Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise OfflineTokenError("the token exchange timed out") from None
        except requests.RequestException as exc:
            raise OfflineTokenError(f"the token exchange failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise OfflineTokenError(f"the token exchange answered HTTP {response.status_code}")
        try:
            answer: Any = response.json()
        except ValueError:
            raise OfflineTokenError("the token exchange answered no JSON") from None
        return _token(answer, system_token)


def _token(answer: Any, system_token: str) -> tuple[str, float]:
    """(token, ttl seconds) from the GraphQL answer, or ``OfflineTokenError`` saying why not."""
    data = answer.get("data") if isinstance(answer, dict) else None
    result = data.get("offlineUserAuthToken") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise OfflineTokenError(
            f"the token exchange was refused: {_messages(answer, system_token)}"
        )
    if result.get("success") is not True:
        raise OfflineTokenError(
            f"the token exchange was refused: {_messages(result, system_token)}"
        )
    auth = result.get("authToken")
    token = auth.get("token") if isinstance(auth, dict) else None
    ttl = auth.get("ttl") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token or not isinstance(ttl, int | float) or ttl <= 0:
        raise OfflineTokenError("the token exchange answered without a usable token")
    return token, float(ttl)


def _messages(part: Any, system_token: str) -> str:
    errors = part.get("errors") if isinstance(part, dict) else None
    found = [
        str(e.get("message"))
        for e in errors or ()
        if isinstance(errors, list) and isinstance(e, dict) and e.get("message")
    ]
    text = "; ".join(found)[:300] or "no reason given"
    return text.replace(system_token, "***")
