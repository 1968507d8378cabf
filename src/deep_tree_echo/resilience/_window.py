"""Count-based sliding window of call outcomes: a ring buffer with a running failure count, O(1)."""

from __future__ import annotations


class OutcomeWindow:
    """The last ``size`` outcomes; ``count`` and ``failures`` are kept up to date."""

    __slots__ = ("_buf", "_index", "count", "failures", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._buf = bytearray(size)
        self._index = 0
        self.count = 0
        self.failures = 0

    def add(self, failed: bool) -> None:
        """Record one outcome, dropping the oldest once the window is full."""
        i = self._index
        if self.count == self.size:
            self.failures -= self._buf[i]
        else:
            self.count += 1
        bit = 1 if failed else 0
        self._buf[i] = bit
        self.failures += bit
        i += 1
        self._index = 0 if i == self.size else i

    def failure_rate(self) -> float:
        """Failures over recorded calls, 0.0 when empty."""
        return self.failures / self.count if self.count else 0.0

    def reset(self) -> None:
        self._index = 0
        self.count = 0
        self.failures = 0
