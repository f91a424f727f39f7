"""The request log: one record per request to a simulated Confluence or GraphQL endpoint.

Records name whose token was used (an account id, ``"system"``, or None for an unknown token) and
never the token itself. ``status`` is 0 when the connection was dropped on purpose. Thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestRecord:
    endpoint: str
    method: str
    path: str
    account_id: str | None
    body: Any
    status: int
    at: datetime
    installation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "accountId": self.account_id,
            "installationId": self.installation_id,
            "body": self.body,
            "status": self.status,
            "at": self.at.isoformat(),
        }


class Journal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def now() -> datetime:
    return datetime.now(UTC)
