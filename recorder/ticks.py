"""Tick-time statistics in constant memory, for loops that run for hours."""

from __future__ import annotations

import numpy as np

_BUCKET_S = 50e-6  # histogram resolution: 0.05 ms
_BUCKETS = 4000  # up to 200 ms; slower ticks land in the last bucket (the max is kept exactly)


class TickStats:
    """Constant-memory distribution of tick durations (seconds in, milliseconds out)."""

    def __init__(self):
        self.counts = [0] * _BUCKETS  # a list: one increment a tick is ~5x cheaper than numpy
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.counts[min(int(seconds / _BUCKET_S), _BUCKETS - 1)] += 1
        self.count += 1
        self.max = max(self.max, seconds)

    def percentile(self, q: float) -> float:
        rank = np.searchsorted(np.cumsum(np.asarray(self.counts)), q / 100 * self.count)
        return float((rank + 1) * _BUCKET_S * 1000)

    def summary(self) -> tuple[float, float, float]:
        """(p50, p99, max) in milliseconds."""
        return self.percentile(50), self.percentile(99), self.max * 1000
