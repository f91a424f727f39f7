"""Fault injection for the simulated Confluence and GraphQL endpoints.

A ``Fault`` applies to one endpoint (``users-bulk``, ``check-access``, ``invite``, ``user-current``,
``graphql``, ``report-accounts``) or to all (``*``), ``times`` times (None: until cleared). Kinds:

- ``429``: a spent quota, as Confluence answers it: ``RateLimit: "global-app-quota";r=0;t=<s>``,
  ``RateLimit-Reason: confluence-quota-global-based``, the burst headers (``X-RateLimit-Limit:
  350``, ``X-RateLimit-Remaining: 349``) and, when ``retry_after`` is set, ``Retry-After``;
- ``burst``: one site's per-second burst limit: 429 with ``X-RateLimit-Limit: 350``,
  ``X-RateLimit-Remaining: 0``, ``Retry-After`` (``retry_after``, else 1) and no quota reason;
- ``503`` (``Retry-After`` when ``retry_after`` is set) and ``500``;
- ``401``, ``403``, ``404``: the site refuses the call (as when the app lost its access);
- ``scope``: 401 as Atlassian's gateway answers a call the app's scopes do not cover, with the body
  seen in practice, ``{"code": 401, "message": "Unauthorized; scope does not match"}``;
- ``latency``: waits ``delay`` seconds, then answers normally;
- ``drop``: closes the connection without any answer.

``delay`` also delays the error kinds. ``headers`` are merged into the fault's answer; a header
given as ``""`` is removed (``{"X-RateLimit-Limit": "", ...}`` gives a bare 429). The first matching
fault, in the order added, is used up by each request. ``Faults`` is thread-safe.

A fault's answer is not metered by the points quota (``simulator.quota``): it spends nothing and is
not counted among the meter's 429s.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ENDPOINTS = (
    "users-bulk",
    "check-access",
    "invite",
    "user-current",
    "graphql",
    "report-accounts",
    "*",
)
KINDS = ("429", "burst", "503", "500", "401", "403", "404", "scope", "latency", "drop")
BURST_LIMIT = 350


@dataclass(slots=True)
class Fault:
    endpoint: str
    kind: str
    times: int | None = 1
    retry_after: int | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def answer_headers(self, now: datetime | None = None) -> dict[str, str]:
        """The headers of this fault's error answer (none for latency and drop)."""
        found: dict[str, str] = {}
        if self.kind == "429":
            wait = self.retry_after if self.retry_after is not None else 60
            at = (now or datetime.now(UTC)) + timedelta(seconds=wait)
            tenant = "tenant" in self.headers.get("RateLimit-Reason", "")
            policy = "tenant-app-quota" if tenant else "global-app-quota"
            found = {
                "RateLimit": f'"{policy}";r=0;t={wait}',
                "RateLimit-Reason": "confluence-quota-global-based",
                "X-RateLimit-Limit": str(BURST_LIMIT),
                "X-RateLimit-Remaining": str(BURST_LIMIT - 1),
                "X-RateLimit-Reset": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
        if self.kind == "burst":
            found = {
                "X-RateLimit-Limit": str(BURST_LIMIT),
                "X-RateLimit-Remaining": "0",
                "Retry-After": str(self.retry_after if self.retry_after is not None else 1),
            }
        if self.kind in ("429", "503") and self.retry_after is not None:
            found["Retry-After"] = str(self.retry_after)
        found.update(self.headers)
        return {name: value for name, value in found.items() if value != ""}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            "endpoint": data["endpoint"],
            "kind": data["kind"],
            "times": data["times"],
            "retryAfter": data["retry_after"],
            "delayMs": round(self.delay * 1000),
            "headers": data["headers"],
        }


class Faults:
    """The faults waiting to happen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        endpoint: str,
        kind: str,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Queue a fault; raises ValueError for an unknown endpoint or kind, or bad numbers."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS}")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {KINDS}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for forever")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if delay < 0:
            raise ValueError("delay must not be negative")
        fault = Fault(endpoint, kind, times, retry_after, float(delay), dict(headers or {}))
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, endpoint: str) -> Fault | None:
        """Use up the first fault matching ``endpoint``, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.endpoint in (endpoint, "*"):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> int:
        """Remove every fault; returns how many there were."""
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)
