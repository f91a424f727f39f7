"""Personal data duties: reporting stored account ids to Atlassian, erasing closed accounts, retention.

Access Desk stores account ids (every column of ``store.personal_data.ACCOUNT_COLUMNS``, and the
accounts audit entries name) and emails (job items, audit subjects). Atlassian's personal data
reporting API (``PERSONAL_DATA_URL``; docs/platform.md, "Personal data") says which stored accounts
were closed or changed since we stored them.

A scheduled trigger only queues this work (``Store.note_scheduled_trigger``: when the last report is
``PERSONAL_DATA_REPORT_DAYS`` old, or housekeeping last ran a day ago); the background worker does
it (``PersonalData.run_due``, a worker chore), one installation at a time under a lease:

1. retention: jobs finished more than ``PERSONAL_DATA_RETENTION_DAYS`` ago lose their emails and
   account ids (items keep outcome and error, the job its counts), older audit entries their
   subjects and actor, and older offline tokens, cached lookups and refusal counts go;
2. report (when due): every stored account id with when its data was last stored, POSTed as the app
   (``Authorization: Bearer <the installation's system token>``) as ``{"accounts": [{"accountId",
   "updatedAt"}]}`` in batches of at most 90. 204: nothing changed. 200 ``{"accounts":
   [{"accountId", "status"}]}``: ``closed`` accounts are erased at once (``Store.erase_accounts``;
   only ids of that batch); ``updated`` needs nothing, since no profile data is stored. The literal
   id ``unknown`` (Atlassian: never report it) is never sent. An answer's ``Cycle-Period`` header
   (the reporting cycle Atlassian asks for, followed instead of ``PERSONAL_DATA_REPORT_DAYS``) is
   kept per installation: seconds, or an ISO 8601 duration (``P7D``, ``PT12H``; the format is not
   settled by the docs, so both are read), between an hour and a year; one that does not parse is
   ignored and the setting stands (``diagnose`` shows the cycle in use).

The system token goes only to a URL on an ``API_BASE_URL_ALLOWLIST`` host. A failed report (no usable
system token, HTTP error, timeout, unreadable answer) is recorded as the installation's
``report_error`` and tried again after ``Retry-After`` (at most an hour) or an hour; batches already
answered stay done (erasure is idempotent).

Errors::

    ReportError   the report could not be made; ``retry_after`` (seconds) says when to try again
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from access_desk.confluence.allowlist import on_allowlisted_host
from access_desk.forge.offline_tokens import post_as_app, usable_system_token
from access_desk.quota.headers import retry_after_seconds
from access_desk.store import Store
from access_desk.store.records import iso

log = logging.getLogger(__name__)

BATCH = 90  # Atlassian's limit of accounts per request
DAY = 24 * 3600.0
RETRY_SECONDS = 3600.0
LEASE_SECONDS = 300.0
NOT_AN_ACCOUNT = "unknown"  # Atlassian: never report the literal account id "unknown"
CYCLE_BOUNDS = (3600.0, 365 * DAY)
_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?"
)


class ReportError(Exception):
    """The report could not be made (the message never contains a token)."""

    def __init__(self, message: str, retry_after: float = RETRY_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Report:
    """One installation's report: ids sent, requests made, ids answered closed and updated."""

    accounts: int
    requests: int
    closed: tuple[str, ...]
    updated: tuple[str, ...]
    cycle_seconds: float | None = None  # the last Cycle-Period the API answered, when it did


class PersonalData:
    """Runs the personal data duties (see the module docstring); times are the store's clock."""

    def __init__(
        self,
        session: requests.Session,
        url: str,
        store: Store,
        *,
        allowlist: Sequence[str],
        report_days: int = 7,
        retention_days: int = 90,
        timeout_seconds: float = 10.0,
        worker_id: str | None = None,
    ) -> None:
        self._session = session
        self._url = url
        self._store = store
        self._allowlist = tuple(allowlist)
        self._report_seconds = report_days * DAY
        self._retention_seconds = retention_days * DAY
        self._timeout = timeout_seconds
        self._worker_id = worker_id or f"personal-data-{uuid.uuid4().hex[:12]}"

    def __repr__(self) -> str:
        return f"PersonalData(url={self._url!r})"

    @property
    def report_every_seconds(self) -> float:
        return self._report_seconds

    def run_due(self) -> bool:
        """Claim one installation whose duty is due and do it; False when none was due."""
        installation_id = self._store.claim_privacy_duty(self._worker_id, LEASE_SECONDS)
        if installation_id is None:
            return False
        self.run(installation_id)
        return True

    def run(self, installation_id: str) -> Report | None:
        """Retention, then the report when due; records the result and releases the lease."""
        self.apply_retention(installation_id)
        health = self._store.installation_health(installation_id)
        last = health.last_report_at if health is not None else None
        cycle = health.report_cycle_seconds if health is not None else None
        every = self._report_seconds if cycle is None else cycle
        if last is not None and self._store.now() - last < every:
            self._store.finish_privacy_duty(
                installation_id, self._worker_id, housekept=True, reported=False
            )
            return None
        try:
            report = self.report(installation_id)
        except ReportError as exc:
            log.warning(
                "personal data report failed",
                extra={"installation": installation_id, "error": str(exc)},
            )
            self._store.finish_privacy_duty(
                installation_id,
                self._worker_id,
                housekept=True,
                reported=False,
                error=str(exc),
                retry_at=self._store.now() + exc.retry_after,
            )
            return None
        self._store.finish_privacy_duty(
            installation_id,
            self._worker_id,
            housekept=True,
            reported=True,
            cycle_seconds=report.cycle_seconds,
        )
        log.info(
            "personal data reported",
            extra={
                "installation": installation_id,
                "accounts": report.accounts,
                "closed": len(report.closed),
                "updated": len(report.updated),
            },
        )
        return report

    def apply_retention(self, installation_id: str) -> tuple[int, int]:
        """Redact what is older than ``PERSONAL_DATA_RETENTION_DAYS`` (see ``Store``)."""
        cutoff = self._store.now() - self._retention_seconds
        return self._store.apply_retention(installation_id, cutoff)

    def report(self, installation_id: str) -> Report:
        """Report every stored account id of the installation; erase those answered ``closed``."""
        if not on_allowlisted_host(self._url, self._allowlist):
            raise ReportError("PERSONAL_DATA_URL is not on an API_BASE_URL_ALLOWLIST host")
        installation = self._store.installation(installation_id)
        token = usable_system_token(installation, self._store.now(), ReportError)
        accounts = [
            (a, at)
            for a, at in self._store.personal_data_accounts(installation_id)
            if a.strip().lower() != NOT_AN_ACCOUNT
        ]
        closed: list[str] = []
        updated: list[str] = []
        requests_made = 0
        cycle: float | None = None
        for start in range(0, len(accounts), BATCH):
            batch = accounts[start : start + BATCH]
            requests_made += 1
            statuses, asked = self._post(token, batch)
            cycle = asked if asked is not None else cycle
            gone = [a for a, s in statuses.items() if s == "closed"]
            if gone:
                self._store.erase_accounts(installation_id, gone)
                closed.extend(gone)
            updated.extend(a for a, s in statuses.items() if s == "updated")
        return Report(len(accounts), requests_made, tuple(closed), tuple(updated), cycle)

    def _post(
        self, token: str, batch: Sequence[tuple[str, float]]
    ) -> tuple[dict[str, str], float | None]:
        """One request; the statuses Atlassian gave (only for ids of ``batch``) and the
        ``Cycle-Period`` it asked for (None: none, or not readable)."""
        body = {"accounts": [{"accountId": a, "updatedAt": iso(at)} for a, at in batch]}
        response = post_as_app(
            self._session,
            self._url,
            token,
            body,
            timeout=self._timeout,
            what="the personal data report",
            error=ReportError,
        )
        cycle = cycle_seconds(response.headers.get("Cycle-Period"))
        if response.status_code == 204:
            return {}, cycle
        if response.status_code != 200:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise ReportError(
                f"the personal data report answered HTTP {response.status_code}",
                RETRY_SECONDS if wait is None else max(wait, 1.0),
            )
        try:
            answer: Any = response.json()
        except ValueError:
            raise ReportError("the personal data report answered no JSON") from None
        return _statuses(answer, {a for a, _ in batch}), cycle


def cycle_seconds(value: str | None) -> float | None:
    """A ``Cycle-Period`` header in seconds (whole seconds, or an ISO 8601 duration such as
    ``P7D``), kept between an hour and a year; None when absent or not readable."""
    text = (value or "").strip().upper()
    if not text:
        return None
    if text.isdigit():
        seconds = float(text)
    else:
        found = _DURATION.fullmatch(text)
        if found is None or not any(found.groupdict().values()):
            return None
        units = {"w": 7 * DAY, "d": DAY, "h": 3600.0, "m": 60.0, "s": 1.0}
        seconds = sum(float(n) * units[k] for k, n in found.groupdict().items() if n)
    if seconds <= 0:
        return None
    low, high = CYCLE_BOUNDS
    return min(max(seconds, low), high)


def _statuses(answer: Any, sent: set[str]) -> dict[str, str]:
    found = answer.get("accounts") if isinstance(answer, dict) else None
    if not isinstance(found, list):
        raise ReportError("the personal data report answered without 'accounts'")
    statuses: dict[str, str] = {}
    for entry in found:
        if not isinstance(entry, dict):
            continue
        account_id, status = entry.get("accountId"), entry.get("status")
        if account_id in sent and status in ("closed", "updated"):
            statuses[account_id] = status
    return statuses
