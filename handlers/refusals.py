"""Refused webhook deliveries, kept off the request's path.

``RefusalNotes.note`` only queues a refusal (microseconds); the webhook route calls it once its 401
answer has been sent (``call_on_close``). One background thread writes the queue to the store
(``Store.record_refusal``) in batches, at most every ``delay_seconds``, so the database work of a
refusal neither delays its answer nor lands on the request that follows it: a refusal tells the
sender nothing about whether the installation exists. A flood costs the store nothing: at most
``KEPT_REFUSALS`` refusals of one installation are queued per ``FLOOD_SECONDS`` (the store keeps
only the last ones anyway), and the queue itself is bounded. The thread starts on the first refusal
and ends after ``idle_seconds`` without one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from access_desk.store import Store
from access_desk.store.deliveries import FLOOD_SECONDS, KEPT_REFUSALS

log = logging.getLogger(__name__)


class RefusalNotes:
    """A bounded queue of refusals and the thread that stores them; see the module doc."""

    def __init__(
        self,
        store: Store,
        *,
        capacity: int = 1000,
        delay_seconds: float = 1.0,
        idle_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[str, str, str | None]] = queue.Queue(maxsize=capacity)
        self._delay = delay_seconds
        self._idle = idle_seconds
        self._sleep = sleep
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}  # installation -> when its last notes came
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def note(self, installation_id: str, reason: str, webhook_id: str | None) -> None:
        """Queue a refusal of a known installation (dropped in a flood, or when the queue is
        full)."""
        now = self._clock()
        with self._lock:
            recent = self._recent.setdefault(installation_id, deque(maxlen=KEPT_REFUSALS))
            if len(recent) == KEPT_REFUSALS and recent[0] > now - FLOOD_SECONDS:
                return
            recent.append(now)
            if len(self._recent) > 10_000:  # forget installations not refused for a while
                self._recent = {
                    k: v for k, v in self._recent.items() if v[-1] > now - FLOOD_SECONDS
                }
        try:
            self._queue.put_nowait((installation_id, reason, webhook_id))
        except queue.Full:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="refusals", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Wait until every queued refusal is stored (tests, shutdown)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            self._sleep(self._delay)  # a batch, away from the request that was refused
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for installation_id, reason, webhook_id in batch:
                try:
                    self._store.record_refusal(installation_id, reason, webhook_id)
                except Exception:  # a lost note must not end the thread
                    log.warning("a refused webhook delivery could not be kept", exc_info=True)
                finally:
                    self._queue.task_done()
