"""Login attempts per username and per client address over a sliding window.

Kept in process memory: it slows guessing against one process, which is what a
single earwitness serve is; several API processes each keep their own count (the
argon2 cost per guess still applies everywhere).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    """``allow(keys)`` is False once any key saw ``attempts`` failures in ``window_s``."""

    def __init__(
        self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(key, deque())
        while seen and now - seen[0] > self.window_s:
            seen.popleft()
        return seen

    def allow(self, *keys: str) -> bool:
        now = self._clock()
        with self._lock:
            return all(len(self._recent(k, now)) < self.attempts for k in keys)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
