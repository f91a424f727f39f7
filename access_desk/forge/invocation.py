"""Forge Invocation Tokens (FIT): verification into a typed ``Invocation``.

Every call Forge makes to the remote carries ``authorization: Bearer <FIT>``, an RS256 JWT signed with a
key from Forge's JWKS. ``Verifier.verify`` accepts RS256 only and checks:

- the signature, against the key named by ``kid`` (``forge.keys.KeySet``: cached, never waits on a fetch
  for a known ``kid``);
- ``iss == "forge/invocation-token"``; ``aud`` is exactly the app ARI, as a string (PyJWT's
  ``strict_aud``: an array is refused even when it holds only the app, since Forge sends a string and
  RFC 7519 lets a single audience be either, so the stricter reading is the safe one);
- ``exp``, ``nbf`` and ``iat`` are present (with ``leeway`` seconds of clock skew) and the lifetime
  ``exp - iat`` is at most ``MAX_LIFETIME`` (Forge's FITs live about 25 s);
- ``app.id`` equals the app ARI;
- ``app.apiBaseUrl``, in canonical form (``confluence.allowlist.canonical_base``: scheme and host
  lowercased, default port dropped, dot segments resolved; userinfo and other tricks refused), is
  under an ``API_BASE_URL_ALLOWLIST`` prefix (``confluence.allowlist.is_allowed``, the one rule),
  so no token is ever sent to a host we do not trust. The invocation carries the canonical form,
  so the URL checked is the URL used.

Isolated Cloud: a FIT may carry an ``icLabel`` claim (at the top or in ``app``; where is unverified),
and its keys are not Forge's usual JWKS. Such a FIT is verified against the key set configured for
that label (``FORGE_IC_JWKS_URLS``), and refused with ``UnsupportedEnvironment`` (401
``unsupported_environment``) when there is none. When labels are configured, the label is read from
the unverified payload to pick the key set; otherwise it is read only when Forge's keys do not know
the token's ``kid`` (so the common path pays nothing). Either way the verified claims must name the
same label.

Forge's bridge sends the same FIT several times; a token that passed every check is remembered until
it expires (at most ``CACHE_SIZE`` of them), so a repeat costs a dictionary look-up instead of a
signature check.

The other tokens Forge sends with a call (user, system) are read by ``forge.tokens``.

Errors::

    AuthError
     +-- InvalidToken       401 invalid_token: anything wrong with the FIT itself
     +-- UnsupportedEnvironment  401 unsupported_environment: an Isolated Cloud FIT (icLabel)
     |                      whose keys are not configured
     +-- UntrustedSite      403 untrusted_site: a valid FIT for an apiBaseUrl not on the allowlist
     +-- KeysUnavailable    503 keys_unavailable: the JWKS could not be fetched and no key is usable
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from access_desk.confluence.allowlist import canonical_base, is_allowed
from access_desk.forge.keys import KeySet, NoKeys, UnknownKid
from access_desk.forge.tokens import finite_number

FIT_ISSUER = "forge/invocation-token"
CACHE_SIZE = 4096
MAX_LIFETIME = 300  # seconds between a FIT's iat and exp
MAX_HEADER = 1024  # characters of the JOSE header segment; Forge's is about 100
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
_LABEL = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_PAYLOAD = 16 * 1024  # characters of the claims segment read for an icLabel; Forge's is ~1.5 KB
_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud"]


class AuthError(Exception):
    """Base of the errors raised while authenticating a Forge call."""


class InvalidToken(AuthError):
    """The FIT is missing, malformed, wrongly signed, expired, or not meant for this app."""


class UnsupportedEnvironment(AuthError):
    """The FIT comes from an Isolated Cloud environment (``icLabel``) with no configured keys."""

    def __init__(self, label: str) -> None:
        shown = label if _LABEL.fullmatch(label) else "(unreadable)"
        super().__init__(
            f"This call comes from the Isolated Cloud environment {shown}, whose signing keys "
            "Access Desk is not configured for: the operator adds "
            f"{shown}=<its JWKS URL> to FORGE_IC_JWKS_URLS."
        )
        self.label = label


class UntrustedSite(AuthError):
    """The FIT is valid but names an ``apiBaseUrl`` outside ``API_BASE_URL_ALLOWLIST``."""


class KeysUnavailable(AuthError):
    """Forge's signing keys could not be fetched, so no FIT can be checked right now."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """The verified claims of one FIT: who calls, for which installation and site."""

    installation_id: str
    api_base_url: str
    cloud_id: str
    principal: str | None
    app_id: str
    environment_id: str | None
    module_key: str | None
    site_url: str | None
    ic_label: str | None = None  # Isolated Cloud environment, when the FIT names one

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Invocation:
        app = claims.get("app")
        if not isinstance(app, dict):
            raise InvalidToken("the token has no app claim")
        installation_id = app.get("installationId")
        api_base_url = app.get("apiBaseUrl")
        if not isinstance(installation_id, str) or not installation_id:
            raise InvalidToken("the token has no app.installationId")
        if not isinstance(api_base_url, str) or not api_base_url:
            raise InvalidToken("the token has no app.apiBaseUrl")
        canonical = canonical_base(api_base_url)
        if canonical is None:
            raise UntrustedSite("the token's apiBaseUrl is not a plain http(s) base URL")
        context = claims.get("context") if isinstance(claims.get("context"), dict) else {}
        assert isinstance(context, dict)
        principal = claims.get("principal")
        environment = app.get("environment") if isinstance(app.get("environment"), dict) else {}
        module = app.get("module") if isinstance(app.get("module"), dict) else {}
        assert isinstance(environment, dict) and isinstance(module, dict)
        return cls(
            installation_id=installation_id,
            api_base_url=canonical,
            cloud_id=_cloud_id(app, context, canonical),
            principal=principal if isinstance(principal, str) and principal else None,
            app_id=str(app.get("id", "")),
            environment_id=_str_or_none(environment.get("id")),
            module_key=_str_or_none(module.get("key")),
            site_url=_str_or_none(context.get("siteUrl")),
            ic_label=ic_label(claims),
        )


class _JWS(jwt.PyJWS):
    """PyJWT's JWS with its base64url segment check done by one regular expression.

    PyJWT 2.15 checks each byte of each segment against the alphabet in a Python loop, which costs
    several times the RS256 signature check itself (bench/verify.py: 6,000 -> 13,000 verifications
    per second). The rules are kept exactly (alphabet only, at most two ``=`` and only on a whole
    quantum, canonical encoding); ``tests/forge/test_invocation.py`` checks the two agree on arbitrary
    segments. Should PyJWT rename the method, the stock check simply runs.
    """

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if (
            padding > 2
            or (padding and len(segment) % 4)
            or len(stripped) % 4 == 1
            or not _BASE64URL.fullmatch(stripped)
        ):
            raise jwt.DecodeError(f"Invalid {name} padding")
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
        if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class _JWT(jwt.PyJWT):
    """``jwt.PyJWT`` on ``_JWS``: the same checks as ``jwt.decode``, in half the time."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _JWS(options=self._get_sig_options())


_DECODER = _JWT()


class Verifier:
    """Verifies FITs for one app. Build once and share: it remembers verified tokens."""

    def __init__(
        self,
        keys: KeySet,
        app_id: str,
        allowlist: tuple[str, ...],
        *,
        leeway: float = 5.0,
        clock: Callable[[], float] = time.time,
        ic_keys: Mapping[str, KeySet] | None = None,
    ) -> None:
        self._app_id = app_id
        self._ic_keys = dict(ic_keys or {})
        self._app_uuid = app_id.rsplit("/", 1)[-1]
        self._allowlist = allowlist
        self._leeway = leeway
        self._keys = keys
        self._clock = clock
        self._verified: dict[str, tuple[Invocation, float]] = {}  # token -> (invocation, exp)
        self._lock = threading.Lock()

    def verify(self, authorization: str | None) -> Invocation:
        """Check an ``Authorization`` header value and return the verified invocation."""
        token = _bearer(authorization)
        now = self._clock()
        with self._lock:
            known = self._verified.get(token)
        if known is not None and now < known[1] + self._leeway:
            return known[0]
        invocation, expires = self._check(token)
        with self._lock:
            if len(self._verified) >= CACHE_SIZE:
                self._verified = {t: v for t, v in self._verified.items() if v[1] > now}
                if len(self._verified) >= CACHE_SIZE:
                    self._verified.clear()
            self._verified[token] = (invocation, expires)
        return invocation

    def _check(self, token: str) -> tuple[Invocation, float]:
        header = _header(token)
        if header.get("alg") != "RS256":
            raise InvalidToken("only RS256 tokens are accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no signing key")
        # The label picks the key set only when some are configured; otherwise it is looked for
        # only when Forge's keys do not verify the token (no cost on the common path).
        label = ic_label(_unverified_claims(token)) if self._ic_keys else None
        keys = self._keys
        if label is not None:
            found = self._ic_keys.get(label)
            if found is None:
                raise UnsupportedEnvironment(label)
            keys = found
        try:
            key = keys.get(kid)
        except NoKeys as exc:
            raise KeysUnavailable("Forge's signing keys could not be fetched") from exc
        except UnknownKid as exc:
            unverified = ic_label(_unverified_claims(token))
            if unverified is not None and unverified not in self._ic_keys:
                raise UnsupportedEnvironment(unverified) from exc
            raise InvalidToken("the token's signing key is not one of Forge's") from exc
        try:
            claims = _DECODER.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self._app_id,
                issuer=FIT_ISSUER,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS, "strict_aud": True},
            )
        except (jwt.PyJWTError, RecursionError) as exc:
            raise InvalidToken(f"the token was refused: {exc}") from exc
        expires, issued = finite_number(claims["exp"]), finite_number(claims["iat"])
        if expires is None or issued is None or expires - issued > MAX_LIFETIME:
            raise InvalidToken(f"the token lives longer than {MAX_LIFETIME} seconds")
        app = claims.get("app")
        app_id = app.get("id") if isinstance(app, dict) else None
        if app_id not in (self._app_id, self._app_uuid):
            raise InvalidToken("the token's app.id is not this app")
        invocation = Invocation.from_claims(claims)
        if invocation.ic_label != label:
            if invocation.ic_label is not None and invocation.ic_label not in self._ic_keys:
                raise UnsupportedEnvironment(invocation.ic_label)
            raise InvalidToken("the token's icLabel is not the one it was verified for")
        if not is_allowed(invocation.api_base_url, self._allowlist):
            raise UntrustedSite("the token's site is not on API_BASE_URL_ALLOWLIST")
        return invocation, expires


def ic_label(claims: Mapping[str, Any]) -> str | None:
    """The Isolated Cloud label a FIT's claims carry (``icLabel`` at the top, else in ``app``;
    where Forge puts it is unverified), or None."""
    app = claims.get("app")
    found = claims.get("icLabel")
    if found is None and isinstance(app, dict):
        found = app.get("icLabel")
    if found is None or found == "":
        return None
    return str(found) if isinstance(found, str) else repr(found)


def _unverified_claims(token: str) -> Mapping[str, Any]:
    """The claims segment, read without any check, only to find an ``icLabel`` (``{}`` when it
    names none or does not parse: the verification then says why). A label hidden from this
    quick look (an escaped key) is caught after verification: the label must be the same."""
    segment = token.split(".", 2)[1]
    if len(segment) > MAX_PAYLOAD:
        return {}
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (ValueError, binascii.Error):
        return {}
    if b"icLabel" not in raw:
        return {}
    try:
        claims = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to pick the key; ``jwt.decode`` then checks the whole token.

    (PyJWT's own header reader validates the whole token character by character, which costs as much
    as the signature check; reading the header segment alone halves the cost of a verification.)
    """
    segment = token.split(".", 1)[0]
    if token.count(".") != 2 or len(segment) > MAX_HEADER or not _SEGMENT.fullmatch(segment):
        raise InvalidToken("the token is not a JWT")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise InvalidToken("the token is not a JWT") from exc
    if not isinstance(header, dict):
        raise InvalidToken("the token is not a JWT")
    return header


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise InvalidToken("the request has no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("the Authorization header is not a Bearer token")
    return token.strip()


def _cloud_id(app: Mapping[str, Any], context: Mapping[str, Any], api_base_url: str) -> str:
    if isinstance(context.get("cloudId"), str):
        return str(context["cloudId"])
    installation = app.get("installation")
    contexts = installation.get("contexts") if isinstance(installation, dict) else None
    for ctx in contexts if isinstance(contexts, list) else []:
        base = ctx.get("apiBaseUrl") if isinstance(ctx, dict) else None
        if isinstance(base, str) and canonical_base(base) == api_base_url:
            found = _str_or_none(ctx.get("cloudId"))
            if found:
                return found
    tail = api_base_url.rstrip("/").rsplit("/", 1)[-1]
    if not tail:
        raise InvalidToken("the token names no site")
    return tail


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
