"""What every diagnose check is made of: the ``Check`` row, the ``warn`` for a call that did not
finish in time (or ``fail`` for one that raised), and the phrases the checks share: a duration in
words (``span``), the points Confluence reported (``points``) and how to redeploy (``REDEPLOY``).

A row has a technical ``detail`` (scopes, claims, context ARIs, ISO times, account ids: what an
operator needs) and a plain ``summary`` beside it (what it means and what to do, for a site admin:
no ISO times, account ids only where a person is meant, each listed in ``accounts`` so the panel
can show them as names). A row made without a summary says so in general words by its status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from access_desk.confluence.results import Probe
from access_desk.quota.headers import read_headers

log = logging.getLogger("resolvers.diagnose")  # the package's name: one logger for every check

REDEPLOY = "redeploy with forge deploy and upgrade the installation (forge install --upgrade)"


GENERAL = {
    "ok": "Works.",
    "warn": "Needs a look: see the details.",
    "fail": "Does not work: see the details.",
}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    summary: str = ""  # plain words; GENERAL[status] when empty
    accounts: tuple[str, ...] = ()  # account ids the summary names, as written in it

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "summary": self.summary or GENERAL.get(self.status, ""),
        }
        if self.accounts:
            out["accounts"] = list(self.accounts)
        return out


def unfinished(name: str, found: Any) -> Check:
    """A check whose call raised (``fail``, logged) or did not finish in time (``warn``)."""
    if isinstance(found, BaseException):
        log.warning("diagnose: the %s check failed", name, exc_info=found)
        return Check(
            name,
            "fail",
            f"The check itself failed ({type(found).__name__}).",
            "This check could not be made. Tell whoever runs Access Desk: the server's log says why.",
        )
    return Check(
        name,
        "warn",
        "Timed out: Confluence did not answer within the call's deadline. "
        "Run the diagnosis again; if it stays slow, the operator should check the "
        "server's connection to api.atlassian.com.",
        "Confluence did not answer in time. Run the diagnosis again; if it stays slow, whoever "
        "runs Access Desk should check the server's connection to Atlassian.",
    )


def points(probe: Probe) -> str:
    """What the rate-limit headers of the answer said, as a sentence (empty without them): the
    quota entry (policy, q, w, r or its absence, t, and which spelling) and the burst limit."""
    rl = probe.rate_limit
    reading = read_headers(probe.status or 0, rl)
    parts = []
    for entry in reading.entries:
        spelling = (
            "RateLimit" if "RateLimit" in rl or "RateLimit-Policy" in rl else "Beta-RateLimit"
        )
        size = (
            f"{entry.limit:,} points per {entry.window} s" if entry.limit and entry.window else ""
        )
        left = (
            f"{entry.remaining:,} left"
            if entry.remaining is not None
            else "r not sent (under about 80% used)"
        )
        reset = f", resets in {round(entry.reset_in)} s" if entry.reset_in is not None else ""
        parts.append(
            f"quota {entry.policy!r} ({spelling}) {size}{', ' if size else ''}{left}{reset}"
        )
    if reading.burst_limit is not None:
        burst = "?" if reading.burst_remaining is None else str(reading.burst_remaining)
        parts.append(f"burst limit {burst} of {reading.burst_limit} a second")
    return f" Rate limits: {'; '.join(parts)}." if parts else ""


def span(seconds: float | None) -> str:
    """A duration in words: ``45 seconds``, ``12 minutes``, ``3 hours``, ``4 days``."""
    s = max(0.0, seconds or 0.0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size * (2 if unit != "minute" else 1):
            n = int(s // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = int(s)
    return f"{n} second{'s' if n != 1 else ''}"
