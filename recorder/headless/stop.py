"""Stopping a recording in order: SIGINT and SIGTERM become a level that loops read between
steps, so a step is never cut between `env.step` and its message.

Level 1 (the first signal): the episode in progress ends as aborted, the session ends, and
everything sent is drained until the writer confirms it. Level 2 (a second signal): stop waiting
for the writer; clean up and report what was not confirmed.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The exit code of a recording stopped by each signal (128 + the signal number, as a shell
# reports a process killed by it).
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """Counts SIGINT/SIGTERM in this process (handlers live in the main thread only) and takes
    levels from elsewhere (`raise_to`: a worker's parent). The level is the larger of the two,
    so a signal that reached both a worker and its parent (a terminal's Ctrl-C goes to the
    whole process group) counts once."""

    def __init__(self):
        self.signals = 0
        self.first_signal: int | None = None
        self._raised = 0
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
            # Deliverable from now on, even if whoever started us had them blocked.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def _handle(self, signum, frame) -> None:
        self.signals += 1
        if self.first_signal is None:
            self.first_signal = signum

    def raise_to(self, level: int) -> None:
        self._raised = max(self._raised, level)

    @property
    def level(self) -> int:
        return max(self.signals, self._raised)

    @property
    def requested(self) -> bool:
        """Stop after this step."""
        return self.level >= 1

    @property
    def hurry(self) -> bool:
        """Stop waiting for the writer too."""
        return self.level >= 2

    def restore(self) -> None:
        """Put the previous handlers back (a later signal then acts as it did before)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
