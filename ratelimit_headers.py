"""What an answer of Confluence says about the points quota: its rate-limit headers, read.

``read_headers`` turns one answer's status and headers into a ``Reading``; any header may be
missing (None: not said). It reads ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (ISO 8601, or
epoch seconds), ``-NearLimit``, the policy's name, quota (``q=``) and window (``w=``) from
``Beta-RateLimit-Policy``, and which pool the answer speaks of from ``RateLimit-Reason`` or the
policy's name (``global``/``app`` -> the app's pool, ``tenant``/``site`` -> the site's own).
``Retry-After`` is read in seconds (``retry_after_seconds``), at most ``MAX_RETRY_AFTER``. What a
reading means for the pools (holds, pacing) is ``ratelimit.Ledger``'s business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from quota_pools import APP

MAX_RETRY_AFTER = 3600.0  # seconds; longer Retry-After answers are taken as one hour


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (None when absent or not a number; HTTP dates are not used),
    at most ``MAX_RETRY_AFTER``: one wild header must not hold a site for ever."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or seconds != seconds:  # absent or NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class Reading:
    """The quota headers of one answer (None: not said). ``reset_at`` is epoch seconds."""

    status: int
    scope: str | None = None  # "app" | "site"
    policy: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    window: float | None = None
    near_limit: bool | None = None
    retry_after: float | None = None

    @property
    def says_quota(self) -> bool:
        return any(
            v is not None
            for v in (self.scope, self.limit, self.remaining, self.reset_at, self.window)
        )


_POLICY = re.compile(r'^\s*"?([^";,\s]+)"?((?:\s*;\s*[a-z]+=[^;,\s]+)*)')


def _scope_of(name: str | None) -> str | None:
    lowered = (name or "").lower()
    if "tenant" in lowered or "site" in lowered:
        return "site"
    if "global" in lowered or "app" in lowered:
        return APP
    return None


def _int(value: str | None) -> int | None:
    try:
        number = int(float(value)) if value is not None else None
    except ValueError:
        return None
    return None if number is None or number < 0 else number


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:  # some APIs send epoch seconds
        number = float(text)
    except ValueError:
        return None
    return number if number > 1e9 and number == number else None


def read_headers(status: int, headers: Mapping[str, str]) -> Reading:
    """What ``headers`` (case-insensitive, e.g. ``requests``' ``CaseInsensitiveDict``) say."""
    policy_name: str | None = None
    limit = _int(headers.get("X-RateLimit-Limit"))
    window: float | None = None
    match = _POLICY.match(headers.get("Beta-RateLimit-Policy") or "")
    if match:
        policy_name = match.group(1)
        params = dict(re.findall(r"([a-z]+)=([^;,\s]+)", match.group(2)))
        limit = limit if limit is not None else _int(params.get("q"))
        w = _int(params.get("w"))
        window = float(w) if w else None
    reason = headers.get("RateLimit-Reason")
    scope = _scope_of(reason) or _scope_of(policy_name)
    near = (headers.get("X-RateLimit-NearLimit") or "").strip().lower()
    return Reading(
        status=status,
        scope=scope,
        policy=policy_name,
        limit=limit,
        remaining=_int(headers.get("X-RateLimit-Remaining")),
        reset_at=_epoch(headers.get("X-RateLimit-Reset")),
        window=window,
        near_limit=True if near == "true" else (False if 200 <= status < 300 else None),
        retry_after=retry_after_seconds(headers.get("Retry-After")),
    )
