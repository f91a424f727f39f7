"""The tokens Forge sends with a call besides the FIT: the user's (``x-forge-oauth-user``) and the
app's system token (``x-forge-oauth-system``), for Atlassian's APIs.

``strip_bearer`` reads a header's raw value. ``token_expiry`` reads when such a token expires: its
``exp`` claim when it decodes as a JWT (read without verifying: it is Forge's token for Atlassian's
APIs, not ours to check), otherwise ``FALLBACK_TOKEN_SECONDS`` (2 hours: Atlassian documents system
tokens as valid for at least 2 hours, at most 4; docs/platform.md) after it was received.
"""

from __future__ import annotations

import math

import jwt

FALLBACK_TOKEN_SECONDS = 2 * 3600  # a token that is not a JWT: Atlassian's minimum lifetime
MAX_TOKEN_SECONDS = 24 * 3600  # an exp further away than this is taken as this


def strip_bearer(value: str | None) -> str | None:
    """A Forge token header's raw value: no ``Bearer `` prefix, ``None`` when absent or blank."""
    if value is None:
        return None
    value = value.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    return value or None


def token_expiry(token: str | None, received_at: float) -> float | None:
    """When a token Forge sent (``x-forge-oauth-system`` or ``-user``) expires, in epoch seconds.

    Its ``exp`` claim when the token decodes as a JWT (read without verifying; capped at
    ``MAX_TOKEN_SECONDS`` after ``received_at``), otherwise ``FALLBACK_TOKEN_SECONDS`` after
    ``received_at``. ``None`` when there is no token.
    """
    if not token:
        return None
    fallback = received_at + FALLBACK_TOKEN_SECONDS
    if token.count(".") != 2 or len(token) > 16 * 1024:
        return fallback
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, RecursionError, ValueError):
        return fallback
    expires = finite_number(claims.get("exp"))
    if expires is None:
        return fallback
    return min(expires, received_at + MAX_TOKEN_SECONDS)


def finite_number(value: object) -> float | None:
    """A finite JSON number as a float (``True`` is not a number here), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
