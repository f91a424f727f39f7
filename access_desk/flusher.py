"""The thread that writes what a process keeps back, in batches (``quota.batched``,
``store.batched_lookups``).

A ``Flusher`` calls its owner's ``flush`` every ``seconds`` while the owner ``has_kept`` something,
backing off (up to ``MAX_PAUSE``) while flushes fail, and at the process's exit (``atexit``: a
gunicorn worker recycled or stopped; the owner is held weakly there, so it can go). The thread
starts on ``wake`` (the owner kept something) and ends once nothing was written for
``IDLE_SECONDS``, whether nothing was kept or every write failed: what is kept stays kept, and the
next ``wake`` starts it again. ``background=False``: no thread (the owner is flushed by hand).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("flusher")

IDLE_SECONDS = 5.0  # the thread ends after this long with nothing written
MAX_PAUSE = 2.0  # the longest pause between flushes while writes fail


class Owner(Protocol):
    def flush(self) -> bool:
        """Write what is kept back; whether all of it was written."""
        ...

    def has_kept(self) -> bool:
        """Whether anything is kept back."""
        ...


class Flusher:
    """See the module docstring. Thread-safe."""

    def __init__(self, owner: Owner, name: str, seconds: float, *, background: bool = True):
        self._owner = weakref.ref(owner)
        self._name = name
        self._seconds = seconds
        self._background = background
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if background:
            atexit.register(_at_exit, self._owner, name)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def wake(self) -> None:
        """Start the thread if it is not running (the owner has just kept something)."""
        if not self._background:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        since = time.monotonic()  # when the thread last wrote (or started)
        pause, failing = self._seconds, False
        while True:
            time.sleep(max(pause, 0.01))
            owner = self._owner()
            if owner is None:
                return
            if owner.has_kept():
                try:
                    failing = not owner.flush()
                except Exception:  # an owner logs its own failures; the thread must not die
                    log.exception("%s: flush failed", self._name)
                    failing = True
                if not failing:
                    since = time.monotonic()
                pause = min(pause * 2, MAX_PAUSE) if failing else self._seconds
            with self._lock:
                idle = time.monotonic() - since >= IDLE_SECONDS
                if idle and (failing or not owner.has_kept()):
                    self._thread = None
                    return
            del owner


def _at_exit(owner: Callable[[], Owner | None], name: str) -> None:
    """At the process's exit: write what is kept back."""
    found = owner()
    if found is not None:
        try:
            found.flush()
        except Exception:
            log.exception("%s: flush at exit failed", name)
