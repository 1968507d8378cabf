"""When a shared (Redis) backend fails: use local state, retry it every few seconds, log once."""

from __future__ import annotations

import logging


class _BackendHealth:
    """Tracks whether a component should use its shared backend or fall back to local state.

    After a failure the backend is skipped for ``retry_interval`` seconds; the first failure
    logs a warning and the first success after it logs that the backend is back.
    """

    __slots__ = ("_down_until", "_label", "_logger", "_retry_interval", "_warned")

    def __init__(self, logger: logging.Logger, label: str, retry_interval: float) -> None:
        self._logger = logger
        self._label = label  # e.g. "circuit orders: shared state"
        self._retry_interval = retry_interval
        self._down_until = 0.0
        self._warned = False

    def available(self, now: float) -> bool:
        """Whether to try the backend at ``now`` (not within a retry interval of a failure)."""
        return now >= self._down_until

    def failed(self, exc: BaseException, now: float) -> None:
        """Record a failure at ``now``: skip the backend for a while, warn once."""
        self._down_until = now + self._retry_interval
        if not self._warned:
            self._warned = True
            self._logger.warning("%s unreachable (%r); using local state", self._label, exc)

    def ok(self) -> None:
        """Record a success; logs once when the backend is reachable again."""
        if self._warned:
            self._warned = False
            self._logger.info("%s reachable again", self._label)
