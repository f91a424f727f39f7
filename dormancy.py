"""Dormant installations: ones Forge no longer invokes, or whose site refuses every call.

An installation turns dormant when

- no scheduled trigger (nor a valid invocation that woke it) arrived for ``QUIET_SECONDS`` (72 h):
  Forge stopped invoking it (uninstalled, and its preUninstall call was lost); reason ``quiet``; or
- its site refused every background call: at least ``REFUSALS_TO_DORMANT`` (10) consecutive
  Confluence answers 401/403/404 to the job worker's chunks, the first of them at least
  ``REFUSAL_SPAN_SECONDS`` (1 h) before the last, with no other answer in between (an answer resets
  the count; 429/503/timeouts count neither way); reason ``refused``.

A dormant installation's jobs pause: the background worker does not claim them, so they spend no
quota and mint no tokens. The next valid invocation (any verified Forge call for the installation:
a trigger, or a panel call) wakes it. The refusal count is kept until the site answers again, so
after a wake-up one refused call (a probe) puts a still-refusing site back to sleep.

``Sweeper(store).chore`` marks quiet installations, at most every ``every_seconds``; the worker runs
it with its jobs. ``note_answer`` is what the job runner calls after each chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from store import Store

log = logging.getLogger(__name__)

QUIET_SECONDS = 72 * 3600.0
REFUSALS_TO_DORMANT = 10
REFUSAL_SPAN_SECONDS = 3600.0


def note_answer(store: Store, installation_id: str, *, refused: bool) -> bool:
    """Count a refused (401/403/404) background call, or reset the count; True when the
    installation just turned dormant."""
    became = store.note_site_answer(
        installation_id,
        refused=refused,
        refusals_to_dormant=REFUSALS_TO_DORMANT,
        span_seconds=REFUSAL_SPAN_SECONDS,
    )
    if became:
        log.warning(
            "installation dormant: its site refuses every call",
            extra={"installation": installation_id},
        )
    return became


class Sweeper:
    """Marks quiet installations dormant, at most once per ``every_seconds`` per process."""

    def __init__(
        self,
        store: Store,
        *,
        every_seconds: float = 300.0,
        quiet_seconds: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._every = every_seconds
        self._quiet = quiet_seconds
        self._clock = clock
        self._next = 0.0

    def chore(self) -> bool:
        """Sweep when due; False (a sweep never keeps the worker busy)."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._every
        for installation_id in self._store.mark_quiet_installations_dormant(self._quiet):
            log.warning(
                "installation dormant: no scheduled trigger for 72 hours",
                extra={"installation": installation_id},
            )
        return False
