"""Bearer tokens the simulated platform issues and accepts.

A token maps to a ``Grant``: the installation it belongs to, the account it acts as (an account id,
or ``"system"`` for the app's system token) and when it expires (wall-clock seconds). As Atlassian
documents its tokens, each is a JWT (HS256 under a secret of the book) whose ``exp`` claim is its
expiry, rounded down to the second; ``TokenBook(opaque=True)`` issues random strings with no
structure instead, the other reading of the docs. Either way the token string itself is the key:
the claims are for the client to read, the book decides. ``TokenBook`` is thread-safe.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Grant:
    installation_id: str
    account_id: str  # an account id, or SYSTEM
    expires_at: float
    offline: bool = False  # an offline user token (minted by the gateway): impersonation

    @property
    def is_system(self) -> bool:
        return self.account_id == SYSTEM


class TokenBook:
    """Issues tokens and looks them up; ``lookup`` returns None for unknown or expired tokens."""

    def __init__(self, clock: Callable[[], float] = time.time, *, opaque: bool = False) -> None:
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self.opaque = opaque
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(
        self, installation_id: str, account_id: str, ttl: float, *, offline: bool = False
    ) -> str:
        now = self._clock()
        if self.opaque:
            prefix = "sys" if account_id == SYSTEM else "usr"
            token = f"{prefix}.{secrets.token_urlsafe(32)}"
        else:
            claims = {
                "iss": "access-desk-simulator",
                "sub": account_id,
                "iat": int(now),
                "exp": int(now + ttl),
                "jti": secrets.token_hex(16),
            }
            token = jwt.encode(claims, self._secret, algorithm="HS256")
        with self._lock:
            self._grants[token] = Grant(installation_id, account_id, now + ttl, offline)
        return token

    def owner(self, token: str | None) -> Grant | None:
        """The grant behind a token even when it has expired (for the request log)."""
        if not token:
            return None
        with self._lock:
            return self._grants.get(token)

    def lookup(self, token: str | None) -> Grant | None:
        grant = self.owner(token)
        if grant is None or grant.expires_at <= self._clock():
            return None
        return grant

    def revoke_installation(self, installation_id: str) -> None:
        """Forget every token of one installation (as if the app had been uninstalled there)."""
        with self._lock:
            for token in [
                t for t, g in self._grants.items() if g.installation_id == installation_id
            ]:
                del self._grants[token]


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
