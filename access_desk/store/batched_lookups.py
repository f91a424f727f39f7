"""A process's lookup cache writes, kept back and written in batches, off the request path.

``lookupUsers`` caches what each caller was shown (``store.lookups``); written call by call, that
write was a quarter of a cold lookup's CPU (``bench/floor.py``). ``BatchedLookups`` keeps each
caller's answers in memory and writes every caller's in one transaction every ``flush_seconds``
(0.1 s, from a ``flusher.Flusher`` thread, and at the process's exit), each caller's room counted
once a batch (``LookupCache.cache_batch``).

- This process's reads see what it keeps back at once (``cached_users`` lays it over the store's
  rows); the other processes see it once written, at most ``flush_seconds`` later (until then they
  ask Confluence, as they would have without a cache).
- ``drop_cached_lookups`` (Confluence refused the caller) drops what is kept back for the caller
  too, before the store's rows: nothing they were shown is written afterwards.
- A write the database refuses is logged and dropped, as before: the cache is only a cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from access_desk.flusher import Flusher
from access_desk.store.lookups import CallerAnswers, LookupCache

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1

Caller = tuple[str, str]  # (installation_id, caller)


class BatchedLookups:
    """The lookup cache of one process over ``store``; see the module docstring. Thread-safe."""

    def __init__(
        self, store: LookupCache, *, flush_seconds: float = FLUSH_SECONDS, background: bool = True
    ) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time
        self._kept: dict[Caller, list[CallerAnswers]] = {}
        self._max_age = 0.0  # the newest LOOKUP_CACHE_SECONDS a write was given
        self.flusher = Flusher(self, "lookup-cache-flush", flush_seconds, background=background)

    def cached_users(
        self, installation_id: str, caller: str, account_ids: Sequence[str], max_age: float
    ) -> dict[str, dict[str, Any] | None]:
        """``LookupCache.cached_users``, with what this process keeps back laid over it (the
        newer answer stands)."""
        found = self._store.cached_users(installation_id, caller, account_ids, max_age)
        with self._lock:
            kept = list(self._kept.get((installation_id, caller), ()))
        if not kept or max_age <= 0:
            return found
        since = self._store.now() - max_age
        wanted = set(account_ids)
        for answers in kept:
            if answers.now <= since:
                continue
            for account_id in wanted.intersection(answers.found):
                found[account_id] = answers.found[account_id]
            for account_id in wanted.intersection(answers.missing):
                found[account_id] = None
        return found

    def cache_users(
        self,
        installation_id: str,
        caller: str,
        users: Sequence[dict[str, Any]],
        not_found: Sequence[str],
        max_age: float,
    ) -> None:
        """Keep what ``caller`` was shown, to be written with the next batch."""
        if max_age <= 0:
            return
        answers = CallerAnswers.of(installation_id, caller, users, not_found, self._store.now())
        if not answers.found and not answers.missing:
            return
        with self._lock:
            self._kept.setdefault((installation_id, caller), []).append(answers)
            self._max_age = max_age
        self.flusher.wake()

    def drop_cached_lookups(self, installation_id: str, caller: str) -> int:
        """Forget everything ``caller`` was shown, kept back or written; how many rows went."""
        with self._flushing:  # not while a batch with their answers is being written
            with self._lock:
                self._kept.pop((installation_id, caller), None)
            return self._store.drop_cached_lookups(installation_id, caller)

    def has_kept(self) -> bool:
        with self._lock:
            return bool(self._kept)

    def flush(self) -> bool:
        """Write every caller's answers kept back in one transaction; whether it was written
        (a refused write is logged and dropped)."""
        with self._flushing:
            with self._lock:
                kept, self._kept = self._kept, {}
                max_age = self._max_age
            batch = [_merged(answers) for answers in kept.values()]
            if not batch:
                return True
            try:
                self._store.cache_batch(batch, max_age)
            except Exception:
                log.exception("lookup cache write failed (%d answers dropped)", len(batch))
                return False
            return True


def _merged(answers: list[CallerAnswers]) -> CallerAnswers:
    """One caller's answers as one (a later answer for an id stands), at the first one's time (so
    nothing is cached longer than it would have been)."""
    first = answers[0]
    found: dict[str, dict[str, Any]] = {}
    missing: dict[str, None] = {}
    for each in answers:
        for account_id, user in each.found.items():
            found[account_id] = user
            missing.pop(account_id, None)
        for account_id in each.missing:
            missing[account_id] = None
            found.pop(account_id, None)
    return CallerAnswers(first.installation_id, first.caller, found, list(missing), first.now)
