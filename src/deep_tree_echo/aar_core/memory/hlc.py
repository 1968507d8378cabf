"""Hybrid logical clock (Kulkarni et al. 2014): versions that follow wall time but never go back.

``now()`` stamps a local event or a send; ``update(remote)`` folds in a stamp received from
another node so that the next local stamp is newer than anything this node has seen. The
physical part is the wall clock in milliseconds; when the wall clock stalls or steps backwards
the logical counter carries the order instead.

``max_drift`` bounds how far a received stamp may be ahead of the local wall clock: a stamp
further ahead is refused (:class:`ClockDriftError`), so no peer can move this clock into the
future (one stamp from the year 2286 would otherwise win every later write, for ever).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from deep_tree_echo.aar_core.errors import ClockDriftError
from deep_tree_echo.aar_core.memory.record import Version

#: ``Version.to_str`` pads the logical counter to five digits; past this the text form
#: would stop sorting like the tuple, so the counter carries into the millisecond part.
MAX_LOGICAL = 99_999


class HybridLogicalClock:
    """A per-node HLC. Thread-safe; stamps are strictly increasing for this instance."""

    __slots__ = ("_lock", "_logical", "_wall_ms", "max_drift", "node_id", "wall_clock")

    def __init__(
        self,
        node_id: str,
        wall_clock: Callable[[], float] = time.time,
        *,
        max_drift: float | None = None,
    ) -> None:
        if not node_id:
            raise ValueError("node_id must be a non-empty string")
        if max_drift is not None and not max_drift >= 0:
            raise ValueError(f"max_drift must be >= 0 seconds or None, got {max_drift!r}")
        self.node_id = node_id
        self.wall_clock = wall_clock
        #: Seconds a received stamp may be ahead of the wall clock (None: unbounded).
        self.max_drift = max_drift
        self._wall_ms = 0
        self._logical = 0
        self._lock = threading.Lock()

    def _physical_ms(self) -> int:
        return int(self.wall_clock() * 1000)

    def _stamp(self, wall_ms: int, logical: int) -> Version:
        if logical > MAX_LOGICAL:
            # Keep the text form sortable: borrow one millisecond from the future.
            wall_ms, logical = wall_ms + 1, 0
        self._wall_ms, self._logical = wall_ms, logical
        return Version(wall_ms, logical, self.node_id)

    def now(self) -> Version:
        """A new stamp for a local event, newer than every stamp issued or seen so far."""
        physical = self._physical_ms()
        with self._lock:
            if physical > self._wall_ms:
                return self._stamp(physical, 0)
            return self._stamp(self._wall_ms, self._logical + 1)

    def check_drift(self, remote: Version, physical_ms: int | None = None) -> None:
        """Raise :class:`ClockDriftError` when ``remote`` is more than ``max_drift`` seconds
        ahead of the wall clock (nothing to check without a ``max_drift``)."""
        if self.max_drift is None:
            return
        physical = self._physical_ms() if physical_ms is None else physical_ms
        ahead_ms = remote.wall_ms - physical
        if ahead_ms > self.max_drift * 1000:
            raise ClockDriftError(
                f"version {remote.to_str()} is {ahead_ms / 1000:.3f} s ahead of this node's "
                f"clock; the maximum clock drift is {self.max_drift:g} s",
                code="clock_drift",
                drift_seconds=ahead_ms / 1000,
                max_clock_drift=self.max_drift,
            )

    def update(self, remote: Version) -> Version:
        """Merge a received stamp; returns a local stamp newer than both ``remote`` and ours.

        Raises :class:`ClockDriftError` (and changes nothing) when ``remote`` is more than
        ``max_drift`` ahead of the wall clock.
        """
        physical = self._physical_ms()
        self.check_drift(remote, physical)
        with self._lock:
            last, logical = self._wall_ms, self._logical
            wall = max(last, remote.wall_ms, physical)
            if wall == last and wall == remote.wall_ms:
                return self._stamp(wall, max(logical, remote.logical) + 1)
            if wall == last:
                return self._stamp(wall, logical + 1)
            if wall == remote.wall_ms:
                return self._stamp(wall, remote.logical + 1)
            return self._stamp(wall, 0)

    def peek(self) -> Version:
        """The last stamp issued (without advancing the clock)."""
        with self._lock:
            return Version(self._wall_ms, self._logical, self.node_id)

    def __repr__(self) -> str:
        return f"HybridLogicalClock(node_id={self.node_id!r}, last={self.peek().to_str()})"
