"""The progress of headless recording, on stdout: a live bar (rich) on a terminal; elsewhere (a
pipe, a log file, a CI job) a plain line every `PLAIN_EVERY` seconds and one at the end, never
cut short or redrawn."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_EVERY = 5.0  # seconds between plain progress lines


class ProgressView:
    def __init__(self, settings, out: TextIO | None = None, every: float = PLAIN_EVERY):
        self.settings = settings
        self.out = out or sys.stdout
        self.every = every
        self.started = time.monotonic()
        self._last_line = self.started
        self._latest: str | None = None
        self.progress = None
        if self.out.isatty():
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
            )
            self.task = self.progress.add_task(
                f"{settings.choice.env_id} episodes", total=settings.episodes, detail=""
            )

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        elif self._latest is not None:
            self._print(self._latest)

    def update(self, workers) -> None:
        steps = sum(w.steps for w in workers)
        elapsed = time.monotonic() - self.started
        rate = steps / max(elapsed, 1e-6)
        episodes = sum(w.episodes for w in workers)
        detail = (f"frames {steps}  {rate:,.0f}/s  durable {sum(w.steps_durable for w in workers)}"
                  f"  backlog {sum(w.backlog for w in workers)}"
                  f"  gaps {sum(w.steps_dropped for w in workers)}")
        if self.progress is not None:
            self.progress.update(self.task, completed=episodes, detail=detail)
            return
        self._latest = (f"{self.settings.choice.env_id}: episodes {episodes}/"
                        f"{self.settings.episodes}  {detail}  ({elapsed:.0f} s)")
        if time.monotonic() - self._last_line >= self.every:
            self._print(self._latest)

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)
        self._last_line = time.monotonic()
        self._latest = None
