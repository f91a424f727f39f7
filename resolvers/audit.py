"""``listAudit``: the installation's audit log, newest first, with cursor paging (administrators).

Filters combine (all must match) and work with the cursor: pass the same filters with each page's
``before``. ``action``, ``actor`` and ``source`` (``panel``, ``webhook``, ``forge``, ``privacy``)
match exactly; ``subject`` matches an email (ASCII letters case-insensitively) or an account id
the entry is about (every email of a job, not only the 100 its ``subjects`` show); ``since`` and ``until`` are
ISO 8601 times, both inclusive, UTC unless they carry an offset, and a bare date means the whole
day (``since`` from its start, ``until`` to its end). A blank filter is no filter.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from resolvers.context import BadInput, Context
from resolvers.inputs import MAX_LENGTH, only_fields, optional_int, optional_str

FILTERS = ("action", "actor", "subject", "since", "until", "source")


def list_entries(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, {"limit", "before", *FILTERS})
    limit = optional_int(payload, "limit", 100, low=1, high=500)
    before = optional_str(payload, "before")
    action, actor, subject, source = (
        _text(payload, f) for f in ("action", "actor", "subject", "source")
    )
    since = _time(payload, "since", end_of_day=False)
    until = _time(payload, "until", end_of_day=True)
    if since is not None and until is not None and until <= since:
        raise BadInput("'until' is before 'since'.", {"until": "before since"})
    ctx.require_admin()
    entries, next_cursor = ctx.store.list_audit(
        ctx.invocation.installation_id,
        limit,
        before=before,
        action=action,
        actor=actor,
        subject=subject,
        since=since,
        until=until,  # exclusive
        source=source,
    )
    return {"entries": [e.to_json() for e in entries], "next": next_cursor}


def _text(payload: dict[str, Any], field: str) -> str | None:
    value = optional_str(payload, field)
    if value is None or not value.strip():
        return None
    if len(value.strip()) > MAX_LENGTH:
        raise BadInput(
            f"'{field}' is longer than {MAX_LENGTH} characters.",
            {field: f"longer than {MAX_LENGTH} characters"},
        )
    return value.strip()


def _time(payload: dict[str, Any], field: str, *, end_of_day: bool) -> float | None:
    """An ISO 8601 date or date-time as epoch seconds. For ``until`` (``end_of_day``) it is the
    exclusive end: just past the given instant, or the midnight after a bare date."""
    value = _text(payload, field)
    if value is None:
        return None
    problem = {field: "not an ISO 8601 date or time, e.g. 2026-11-29 or 2026-11-29T08:00:00Z"}
    try:
        if len(value) > 64:
            raise ValueError(value)
        try:
            day = date.fromisoformat(value)
        except ValueError:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
            return math.nextafter(seconds, math.inf) if end_of_day else seconds
        start = datetime.combine(day, time.min, UTC)
        return (start + timedelta(days=1) if end_of_day else start).timestamp()
    except (ValueError, OverflowError):
        raise BadInput(f"'{field}' is not an ISO 8601 date or time.", problem) from None
