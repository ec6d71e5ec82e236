"""The progress bar of headless recording (rich)."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressView:
    def __init__(self, settings):
        self.settings = settings
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
        )
        self.task = self.progress.add_task(
            f"{settings.choice.env_id} episodes", total=settings.episodes, detail=""
        )
        self.started = time.monotonic()

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def update(self, workers) -> None:
        steps = sum(w.steps for w in workers)
        rate = steps / max(time.monotonic() - self.started, 1e-6)
        detail = (f"frames {steps}  {rate:,.0f}/s  durable {sum(w.steps_durable for w in workers)}"
                  f"  backlog {sum(w.backlog for w in workers)}"
                  f"  gaps {sum(w.steps_dropped for w in workers)}")
        self.progress.update(self.task, completed=sum(w.episodes for w in workers),
                             detail=detail)
