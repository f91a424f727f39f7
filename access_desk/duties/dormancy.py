"""Dormant installations and paused accounts: ones Forge no longer invokes, or Confluence refuses.

Only the background worker's calls count (a panel's own ``getJob`` poll never does), per acting
account (the admin a job acts as):

- an account is **paused** when Confluence refused every background call made as it: at least
  ``REFUSALS_TO_PAUSE`` (10) consecutive answers 401/403/404 to the worker's chunks acting as it,
  the first of them at least ``REFUSAL_SPAN_SECONDS`` (1 h) before the last, with no other answer
  in between (an answer resets the count; 429/503/timeouts count neither way). Only the jobs acting
  as that account pause (``Job.paused`` says why); the others go on.
- an installation turns **dormant** when no scheduled trigger (nor a valid invocation that woke
  it) arrived for ``QUIET_SECONDS`` (72 h): Forge stopped invoking it (uninstalled, and its
  preUninstall call was lost; reason ``quiet``): none of its jobs are claimed. It is also marked
  dormant (``refused``) when pausing an account leaves none of its accounts with a background
  call in the last ``RECENT_SECONDS`` (24 h) unpaused: its site refuses every background call.
  That pauses nothing more (those accounts' jobs already wait; another admin's job may still try,
  and an answer to it ends the mark).

Paused and quiet jobs wait: the background worker does not claim them, so they spend no quota and
mint no tokens. The next valid invocation (any verified Forge call for the installation: a
trigger, or a panel call) wakes the installation and its accounts. Refusal counts are kept until
Confluence answers again, so after a wake-up one refused call puts a still-refused account back
to sleep.

``Sweeper(store).chore`` marks quiet installations, at most every ``every_seconds``; the worker runs
it with its jobs. ``note_answer`` is what the job runner calls after each of the worker's chunks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from access_desk.store import Store

log = logging.getLogger(__name__)

QUIET_SECONDS = 72 * 3600.0
REFUSALS_TO_PAUSE = 10
REFUSAL_SPAN_SECONDS = 3600.0
RECENT_SECONDS = 24 * 3600.0


def note_answer(store: Store, installation_id: str, account_id: str, *, refused: bool) -> bool:
    """Count a refused (401/403/404) background call acting as ``account_id``, or reset its
    count; True when the account was just paused (its jobs stop being claimed)."""
    paused, dormant = store.note_account_answer(
        installation_id,
        account_id,
        refused=refused,
        refusals_to_pause=REFUSALS_TO_PAUSE,
        span_seconds=REFUSAL_SPAN_SECONDS,
        recent_seconds=RECENT_SECONDS,
    )
    if paused:
        log.warning(
            "account paused: Confluence refuses every background call made as it",
            extra={"installation": installation_id, "account": account_id},
        )
    if dormant:
        log.warning(
            "installation dormant: its site refuses every background call",
            extra={"installation": installation_id},
        )
    return paused


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
