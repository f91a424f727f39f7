"""What the Confluence client answers: per-input results with exact accounting, the admin status,
and the one-request ``Probe`` that ``diagnose`` reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from access_desk.confluence.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class Failure:
    subject: str
    error: str
    retry_after: float | None = None
    status: int | None = field(default=None, compare=False)  # the HTTP status, when answered

    @staticmethod
    def of(chunk: list[str], error: UpstreamError) -> list[Failure]:
        """One failure per subject of ``chunk``, all for ``error``."""
        return [Failure(s, error.reason, error.retry_after, error.status) for s in chunk]


@dataclass(frozen=True, slots=True)
class LookupResult:
    users: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AccessResult:
    without_access: list[str] = field(default_factory=list)
    with_access: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InviteResult:
    invited: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AdminStatus:
    account_id: str | None
    is_admin: bool
    operations: tuple[str, ...] = ()  # as Confluence reported them: "administer/application", ...


RATE_LIMIT_HEADERS = (
    "RateLimit-Policy",
    "RateLimit",
    "Beta-RateLimit-Policy",
    "Beta-RateLimit",
    "RateLimit-Reason",
    "X-Beta-RateLimit-Reason",
    "X-RateLimit-NearLimit",
    "X-Beta-RateLimit-NearLimit",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
)


@dataclass(frozen=True, slots=True)
class Probe:
    """One request as a probe saw it. ``status`` None: no answer (``reason`` says why:
    ``rate_limited`` while a hold is on, ``timeout``, ``connection_error``); ``body`` is the JSON
    answer (None when empty or not JSON); ``message`` the error detail of a non-2xx answer;
    ``rate_limit`` the rate-limit headers present (``RATE_LIMIT_HEADERS``)."""

    status: int | None
    body: Any = None
    reason: str | None = None
    message: str = ""
    rate_limit: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
