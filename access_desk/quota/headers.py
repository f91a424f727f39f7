"""What one answer of Confluence says about its rate limits: its headers, read (``Reading``).

Confluence applies two limits apart (docs/platform.md, "Rate limits"):

- **The points quota** comes as RFC 9651 structured fields, read with ``http_sf`` (a maintained
  parser), never with patterns: ``RateLimit-Policy: "global-app-quota";q=65000;w=3600`` and
  ``RateLimit: "global-app-quota";r=1200;t=600``, or during the beta ``Beta-RateLimit-Policy`` and
  ``Beta-RateLimit``. Each is a list of entries named by their policy, in any order and number;
  entries of both spellings are merged by name (the unprefixed one wins a parameter both give).
  Every parameter is optional; a value that is not a finite number in its range (``q`` and ``w``
  at least 1, ``r`` and ``t`` at least 0, none above ``MAX_QUOTA`` / ``MAX_WINDOW``) is ignored,
  and a field that does not parse is ignored entry by entry. ``global`` in a policy name means the
  app's pool, ``tenant``/``site`` the site's own; other names (a burst policy, say) are not the
  quota. ``X-RateLimit-NearLimit`` / ``X-Beta-RateLimit-NearLimit: true`` says under 20% is left.
- **The burst limit** (per second, per site) is ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining``
  (``burst_limit``, ``burst_remaining``): never the quota.

A 429 is a quota refusal (``quota_429``) when ``RateLimit-Reason`` / ``X-Beta-RateLimit-Reason``
names the quota (matched loosely: ``quota``, ``global``, ``tenant``; vendors report values such as
``conf-global-based``) or, without a reason, when a quota entry says ``r=0``; its ``refused_scope``
is the pool the reason or the entry names. Any other 429 is a burst refusal (``burst_429``): one
site's pause. ``Retry-After`` is read as seconds (``retry_after_seconds``). Nothing here raises on
bad input: what cannot be read is not said (None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import http_sf

from access_desk.quota.pools import APP, SITE

MAX_RETRY_AFTER = 3600.0  # seconds; a longer Retry-After is taken as one hour
MAX_QUOTA = 10**9  # points: a larger q or r is not a quota
MAX_WINDOW = 7 * 86400  # seconds: a larger w or t is not a window
POLICY_HEADERS = ("RateLimit-Policy", "Beta-RateLimit-Policy")  # the enforced spelling first
STATE_HEADERS = ("RateLimit", "Beta-RateLimit")
REASON_HEADERS = ("RateLimit-Reason", "X-Beta-RateLimit-Reason")
NEAR_HEADERS = ("X-RateLimit-NearLimit", "X-Beta-RateLimit-NearLimit")


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a plain non-negative number (``120``, ``0.5``), at most
    ``MAX_RETRY_AFTER``. Anything else (absent, a date, ``-5``, ``1e999``, ``inf``, ``nan``) is
    None: an unreadable header must not hold anything."""
    text = (value or "").strip()
    whole, _, fraction = text.partition(".")
    if not whole.isascii() or not whole.isdigit() or not (fraction == "" or fraction.isdigit()):
        return None
    if len(whole) > 12:
        return MAX_RETRY_AFTER
    return min(float(text), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class QuotaEntry:
    """One policy's entry of the quota headers (None: not said)."""

    policy: str
    scope: str  # APP or SITE
    limit: int | None = None  # q: points per window
    window: int | None = None  # w: seconds
    remaining: int | None = None  # r: points left (sent once about 80% is used)
    reset_in: float | None = None  # t: seconds to the window's end
    stated: bool = False  # the RateLimit entry itself came (with or without r)


@dataclass(frozen=True, slots=True)
class Reading:
    """The rate-limit headers of one answer (see the module docstring)."""

    status: int
    entries: tuple[QuotaEntry, ...] = ()
    reason: str | None = None
    near_limit: bool | None = None
    retry_after: float | None = None
    burst_limit: int | None = None
    burst_remaining: int | None = None

    def entry(self, scope: str) -> QuotaEntry | None:
        return next((e for e in self.entries if e.scope == scope), None)

    @property
    def reason_scope(self) -> str | None:
        """The pool ``RateLimit-Reason`` names (APP, SITE), ``"burst"``, or None."""
        lowered = (self.reason or "").lower()
        if not lowered:
            return None
        if "burst" in lowered:
            return "burst"
        if "tenant" in lowered or "site" in lowered:
            return SITE
        if "quota" in lowered or "global" in lowered:
            return APP
        return None

    @property
    def refused_scope(self) -> str | None:
        """For a quota 429: the pool refused (APP or SITE); None for any other answer."""
        if self.status != 429:
            return None
        scope = self.reason_scope
        if scope in (APP, SITE):
            return scope
        if scope is None:
            spent = [e for e in self.entries if e.remaining == 0]
            if spent:
                return SITE if any(e.scope == SITE for e in spent) else APP
        return None

    @property
    def quota_429(self) -> bool:
        return self.refused_scope is not None

    @property
    def burst_429(self) -> bool:
        return self.status == 429 and self.refused_scope is None


def read_headers(status: int, headers: Mapping[str, str]) -> Reading:
    """What ``headers`` (case-insensitive, e.g. ``requests``' ``CaseInsensitiveDict``) say."""
    merged: dict[str, dict[str, Any]] = {}
    stated: set[str] = set()
    for names, keys in ((POLICY_HEADERS, ("q", "w")), (STATE_HEADERS, ("r", "t"))):
        for name in reversed(names):  # the beta spelling first, so the enforced one wins
            for policy, params in _entries(headers.get(name)):
                if keys == ("r", "t"):
                    stated.add(policy)
                fields = merged.setdefault(policy, {})
                fields.update({k: params[k] for k in keys if k in params})
    entries = tuple(
        QuotaEntry(
            policy=policy,
            scope=scope,
            limit=_number(fields.get("q"), 1, MAX_QUOTA),
            window=_number(fields.get("w"), 1, MAX_WINDOW),
            remaining=_number(fields.get("r"), 0, MAX_QUOTA),
            reset_in=_seconds(fields.get("t")),
            stated=policy in stated,
        )
        for policy, fields in merged.items()
        if (scope := _scope_of(policy)) is not None
    )
    return Reading(
        status=status,
        entries=entries,
        reason=_first(headers, REASON_HEADERS),
        near_limit=_near(headers, status),
        retry_after=retry_after_seconds(headers.get("Retry-After")),
        burst_limit=_plain_int(headers.get("X-RateLimit-Limit")),
        burst_remaining=_plain_int(headers.get("X-RateLimit-Remaining")),
    )


def _entries(value: str | None) -> Iterable[tuple[str, dict[str, Any]]]:
    """(policy name, parameters) of each entry of a structured list; an entry that does not
    parse is skipped (the whole field first, then entry by entry)."""
    if not value:
        return []
    try:
        parsed: Any = http_sf.parse(value.encode("latin-1", "replace"), tltype="list")
        members = list(parsed)
    except (http_sf.StructuredFieldError, ValueError, UnicodeError):
        members = []
        for part in value.split(","):
            try:
                members.append(http_sf.parse(part.encode("latin-1", "replace"), tltype="item"))
            except (http_sf.StructuredFieldError, ValueError, UnicodeError):
                continue
    found = []
    for member in members:
        if not isinstance(member, tuple) or len(member) != 2:
            continue
        name, params = member
        if isinstance(name, str | http_sf.Token) and not isinstance(name, bool):
            found.append((str(name), dict(params)))
    return found


def _scope_of(policy: str) -> str | None:
    lowered = policy.lower()
    if "burst" in lowered:
        return None
    if "tenant" in lowered or "site" in lowered:
        return SITE
    if "global" in lowered or "app-quota" in lowered:
        return APP
    return None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _number(value: Any, low: int, high: int) -> int | None:
    number = _finite(value)
    if number is None or not low <= number <= high:
        return None
    return int(number)


def _seconds(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and 0 <= number <= MAX_WINDOW else None


def _plain_int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def _first(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value and value.strip():
            return value.strip()[:200]
    return None


def _near(headers: Mapping[str, str], status: int) -> bool | None:
    values = [(headers.get(n) or "").strip().lower() for n in NEAR_HEADERS]
    if "true" in values:
        return True
    if "false" in values or 200 <= status < 300:
        return False
    return None
