"""Offline user tokens: acting as a user with nobody in session (background and webhook jobs).

``OfflineTokens.token_for(installation, account_id)`` returns a user token for ``account_id`` on
that installation's site. Tokens are cached in the store (encrypted) per (installation, user) and
reused until 5 minutes before they expire; otherwise one is minted with Atlassian's GraphQL
mutation ``offlineUserAuthToken`` (docs/platform.md, "Offline user token"), authorized by the
installation's latest system token. ``renew`` drops a cached token that
Confluence refused (401) and mints a fresh one; ``mint`` always mints one (``diagnose``: a cached
token would not show whether the platform still grants them).

The mutation's context ARI is unverified: the site form ``ari:cloud:confluence::site/<cloudId>``
is tried first, then the workspace form ``ari:cloud:confluence:<cloudId>:workspace/<cloudId>``
when the gateway refuses the first (``success: false`` or GraphQL ``errors``, or HTTP 400). The
form that worked is remembered per installation and tried first next time; the gateway's
``errors[].message`` of each refused form is kept in the error (job items show it) and stored as
the installation's last offline token error (``diagnose`` shows it), cleared by the next success.
Nothing is retried otherwise: the job worker tries again later.

Mints count against Forge's limit of 1,000 a minute per app, every instance together
(``quota.mints.Mints``, shared through the store): past it, or while the gateway's 429
holds mints, no mint is tried and ``OfflineTokenError`` says when one may go (a job waits).

``usable_system_token`` and ``post_as_app`` (a POST as the app, with its system token, to an
allowlisted URL: ``on_allowlisted_host``) serve this exchange and ``duties.personal_data``'s report.

Errors::

    OfflineTokenError        no system token stored, it expired, a URL is not allowlisted, or the
     |                       exchange failed (HTTP error, timeout, bad body)
     +-- OfflineTokenRefused the gateway refused the exchange; ``.reason`` holds its messages

No token ever appears in a message, a log line or a repr.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from access_desk.confluence.allowlist import is_allowed, on_allowlisted_host
from access_desk.quota.headers import retry_after_seconds
from access_desk.quota.mints import Mints
from access_desk.store import Store
from access_desk.store.records import Installation

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 5 * 60
FORMS = ("site", "workspace")
MUTATION = """
mutation forge_remote_offlineUserAuthToken($input: OfflineUserAuthTokenInput!) {
  offlineUserAuthToken(input: $input) { success errors { message } authToken { token ttl } }
}
""".strip()


def context_ari(form: str, cloud_id: str) -> str:
    """The installation's context ARI in ``form`` (``site`` or ``workspace``)."""
    if form == "site":
        return f"ari:cloud:confluence::site/{cloud_id}"
    if form == "workspace":
        return f"ari:cloud:confluence:{cloud_id}:workspace/{cloud_id}"
    raise ValueError(f"unknown context ARI form {form!r}")


def usable_system_token(
    installation: Installation | None, now: float, error: Callable[[str], Exception]
) -> str:
    """The installation's stored system token; raises ``error(reason)`` when there is none yet or
    it has expired by ``now``."""
    token = installation.system_token if installation is not None else None
    expires = installation.system_token_expires_at if installation is not None else None
    if not token:
        raise error("no system token is stored for this installation yet")
    if expires is not None and expires <= now:
        raise error("the stored system token has expired")
    return token


def post_as_app(
    session: requests.Session,
    url: str,
    system_token: str,
    body: Any,
    *,
    timeout: float,
    what: str,
    error: Callable[[str], Exception],
) -> requests.Response:
    """POST ``body`` as JSON to ``url`` as the app (``Authorization: Bearer <system_token>``),
    following no redirect (the caller has checked ``url`` with ``on_allowlisted_host``). A timeout
    or connection failure raises ``error("<what> timed out" / "<what> failed: <exception type>")``,
    never naming the token."""
    try:
        return session.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {system_token}", "Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise error(f"{what} timed out") from None
    except requests.RequestException as exc:
        raise error(f"{what} failed: {type(exc).__name__}") from None


class OfflineTokenError(Exception):
    """No offline user token can be had right now; the message never contains a token."""


class OfflineTokenRefused(OfflineTokenError):
    """The gateway refused the exchange; ``reason`` is its ``errors[].message`` (or a status)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the token exchange was refused: {reason}")
        self.reason = reason


class OfflineTokens:
    """Mints and caches offline user tokens (see the module docstring)."""

    def __init__(
        self,
        session: requests.Session,
        graphql_url: str,
        store: Store,
        *,
        allowlist: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
        timeout_seconds: float = 10.0,
        mints: Mints | None = None,
    ) -> None:
        self._mints = mints
        self._session = session
        self._url = graphql_url
        self._store = store
        self._allowlist = tuple(allowlist) if allowlist is not None else None
        self._clock = clock
        self._timeout = timeout_seconds

    def __repr__(self) -> str:
        return f"OfflineTokens(graphql_url={self._url!r})"

    def token_for(self, installation: Installation, account_id: str) -> str:
        """A user token for ``account_id``, cached until 5 minutes before it expires.

        With an ``allowlist``, ``installation.api_base_url`` (where the token will be sent) must be
        under one of its prefixes and the GraphQL URL (where the system token goes) on one of its
        hosts; otherwise no token is minted.
        """
        self._guard(installation)
        cached = self._store.offline_token(installation.installation_id, account_id)
        if cached is not None and cached[1] - REFRESH_MARGIN_SECONDS > self._clock():
            return cached[0]
        return self._fresh(installation, account_id)

    def mint(self, installation: Installation, account_id: str) -> str:
        """A freshly minted token for ``account_id`` (cached for later use), never a cached one."""
        self._guard(installation)
        return self._fresh(installation, account_id)

    def renew(self, installation: Installation, account_id: str) -> str:
        """Drop the cached token of ``account_id`` (Confluence refused it) and mint a new one."""
        self._guard(installation)
        self._store.drop_offline_token(installation.installation_id, account_id)
        log.info(
            "offline token dropped after a refusal",
            extra={"installation": installation.installation_id, "account": account_id},
        )
        return self._fresh(installation, account_id)

    def _guard(self, installation: Installation) -> None:
        """Refuse (and record why) when a token would go outside the allowlist."""
        problem = None
        if self._allowlist is None:
            return
        if not is_allowed(installation.api_base_url, self._allowlist):
            problem = "the installation's API base URL is not allowlisted"
        elif not on_allowlisted_host(self._url, self._allowlist):
            problem = "GRAPHQL_URL is not on an API_BASE_URL_ALLOWLIST host"
        if problem is not None:
            self._store.offline_token_failed(installation.installation_id, problem)
            raise OfflineTokenError(problem)

    def _fresh(self, installation: Installation, account_id: str) -> str:
        iid = installation.installation_id
        try:
            token, ttl, form = self._mint_any(installation, account_id)
        except OfflineTokenError as exc:
            self._store.offline_token_failed(iid, str(exc))
            raise
        now = self._clock()
        self._store.save_offline_token(iid, account_id, token, now + ttl)
        self._store.offline_token_minted(iid, form)
        log.info(
            "offline token minted",
            extra={"installation": iid, "account": account_id, "contextForm": form},
        )
        return token

    def _mint_any(self, installation: Installation, account_id: str) -> tuple[str, float, str]:
        """(token, ttl, form): the remembered form first, then the other one if it is refused."""
        system = usable_system_token(installation, self._clock(), OfflineTokenError)
        remembered = self._store.context_form(installation.installation_id)
        order = sorted(FORMS, key=lambda f: f != remembered)
        refused: list[str] = []
        for form in order:
            try:
                token, ttl = self._mint(
                    system, context_ari(form, installation.cloud_id), account_id
                )
            except OfflineTokenRefused as exc:
                refused.append(f"{form} form: {exc.reason}")
                continue
            return token, ttl, form
        raise OfflineTokenRefused("; ".join(refused))

    def _mint(self, system_token: str, context: str, account_id: str) -> tuple[str, float]:
        wait = self._mints.take() if self._mints is not None else 0.0
        if wait > 0:
            raise OfflineTokenError(
                "Forge's limit of offline token mints a minute is reached; the next can go in "
                f"{math.ceil(wait)} s"
            )
        body = {
            "query": MUTATION,
            "variables": {"input": {"contextIds": [context], "userId": account_id}},
        }
        response = post_as_app(
            self._session,
            self._url,
            system_token,
            body,
            timeout=self._timeout,
            what="the token exchange",
            error=OfflineTokenError,
        )
        answer: Any
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 429:
            pause = retry_after_seconds(response.headers.get("Retry-After")) or 60.0
            if self._mints is not None:
                self._mints.hold(pause)
            raise OfflineTokenError(f"the token exchange answered HTTP 429; retry in {pause:g} s")
        if response.status_code == 400:
            raise OfflineTokenRefused(f"HTTP 400: {_messages(answer, system_token)}")
        if response.status_code != 200:
            raise OfflineTokenError(f"the token exchange answered HTTP {response.status_code}")
        if answer is None:
            raise OfflineTokenError("the token exchange answered no JSON")
        return _token(answer, system_token)


def _token(answer: Any, system_token: str) -> tuple[str, float]:
    """(token, ttl seconds) from the GraphQL answer, or ``OfflineTokenError`` saying why not."""
    data = answer.get("data") if isinstance(answer, dict) else None
    result = data.get("offlineUserAuthToken") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise OfflineTokenRefused(_messages(answer, system_token))
    if result.get("success") is not True:
        raise OfflineTokenRefused(_messages(result, system_token))
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
