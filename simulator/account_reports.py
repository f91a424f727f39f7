"""What the simulated personal data reporting API (``simulator.privacy``) remembers: the accounts
marked closed or updated (``PUT /_sim/privacy/accounts``), the reports the app sent, and the
``Cycle-Period`` every answer carries when set."""

from __future__ import annotations

import threading
import time
from typing import Any

STATUSES = ("closed", "updated")


class AccountReports:
    """The accounts marked closed/updated and the reports received; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[str, tuple[str, float]] = {}  # account id -> (status, marked at)
        self._reports: list[dict[str, Any]] = []
        self.cycle_period: str | None = None  # the Cycle-Period header of every answer

    def mark(self, account_id: str, status: str | None) -> None:
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES} or null")
        with self._lock:
            if status is None:
                self._marks.pop(account_id, None)
            else:
                self._marks[account_id] = (status, time.time())

    def statuses(
        self, accounts: list[tuple[str, float]], closed_on_site: set[str]
    ) -> list[dict[str, str]]:
        """What to answer for (account id, updatedAt epoch) pairs, in the order given."""
        found = []
        with self._lock:
            for account_id, updated_at in accounts:
                status, at = self._marks.get(account_id, ("", 0.0))
                if account_id in closed_on_site or status == "closed":
                    found.append({"accountId": account_id, "status": "closed"})
                elif status == "updated" and at > updated_at:
                    found.append({"accountId": account_id, "status": "updated"})
        return found

    def record(self, installation_id: str, account_ids: list[str], answered: Any) -> None:
        with self._lock:
            self._reports.append(
                {"installationId": installation_id, "accountIds": account_ids, "answer": answered}
            )

    @property
    def reports(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._reports)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "reports": list(self._reports),
                "marks": {a: s for a, (s, _) in self._marks.items()},
                "cyclePeriod": self.cycle_period,
            }

    def clear(self) -> None:
        with self._lock:
            self._reports.clear()
