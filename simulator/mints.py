"""Forge's limit on offline token mints: 1,000 a minute for the whole app, minutes on the clock.

``MintLimit.take()`` counts a mint or says how long until the next minute; the simulated GraphQL
gateway (``simulator.gateway``) then answers 429 with ``Retry-After``. ``limit`` lowers it for
tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class MintLimit:
    """Offline token mints a clock minute for the app (thread-safe); ``refused`` counts 429s."""

    def __init__(self, limit: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.refused = 0
        self.minted = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._minute = -1
        self._count = 0

    def take(self) -> float:
        """0.0 when a mint may go now (counted), else the seconds to the next minute."""
        with self._lock:
            now = self._clock()
            minute = math.floor(now / 60)
            if minute != self._minute:
                self._minute, self._count = minute, 0
            if self._count >= self.limit:
                self.refused += 1
                return (minute + 1) * 60 - now
            self._count += 1
            self.minted += 1
            return 0.0
