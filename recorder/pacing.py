"""Frame pacing for a game a person plays: deadline-based, so the rate does not drift.

Frame n is due at `t0 + n / fps`: a frame that took longer than usual is followed by a shorter
wait, instead of every wait being `1/fps` on top of the work (which would run slow). A frame
whose work ran past its deadline is *late* and is counted; one that is more than a whole period
late moves the schedule (the game slows down rather than rushing frames out to catch up).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np


class FramePacer:
    def __init__(self, fps: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep, keep: int = 100_000):
        self.period = 1.0 / fps
        self.fps = fps
        self.clock, self.sleep = clock, sleep
        self.frames = 0  # frames paced since the start
        self.late = 0  # of those, frames whose work overran their deadline
        self.intervals: deque[float] = deque(maxlen=keep)  # seconds between frames
        # seconds of each frame's own work: from one wait's return to the next wait's call
        self.work: deque[float] = deque(maxlen=keep)
        self._recent: deque[float] = deque()  # frame times of the last second
        self._deadline: float | None = None
        self._last: float | None = None

    def set_fps(self, fps: float) -> None:
        """Pace the frames from the next one on at `fps` (the next deadline is one new period
        after the last one: no jump, no burst)."""
        self.fps, self.period = fps, 1.0 / fps

    def wait(self) -> float:
        """Sleep until the next frame is due; returns the clock at that moment."""
        now = self.clock()
        if self._last is not None:
            self.work.append(now - self._last)
        if self._deadline is None:
            self._deadline = now
        else:
            self._deadline += self.period
            if now > self._deadline:
                self.late += 1
                if now - self._deadline > self.period:
                    self._deadline = now  # re-anchor: no burst of catch-up frames
        if (left := self._deadline - now) > 0:
            self.sleep(left)
            now = self.clock()
        self._tick(now)
        return now

    def _tick(self, now: float) -> None:
        self.frames += 1
        if self._last is not None:
            self.intervals.append(now - self._last)
        self._last = now
        self._recent.append(now)
        while self._recent and now - self._recent[0] > 1.0:
            self._recent.popleft()

    @property
    def achieved_fps(self) -> float:
        """Frames per second over the last second (0 until there are two frames)."""
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else 0.0

    def interval_percentiles(self, *q: float) -> list[float]:
        """Percentiles of the time between frames, in seconds (NaN before two frames)."""
        if not self.intervals:
            return [float("nan")] * len(q)
        return [float(v) for v in np.percentile(np.fromiter(self.intervals, float), q)]
