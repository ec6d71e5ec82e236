"""Publishing while recording: a background thread of the writer that runs `publish` passes.

The writer's thread only calls `notify(layout, shard)` after a seal, which puts the dataset's
folder on a queue and returns (no I/O, no waiting). The worker thread runs at a lower CPU
priority than the encoders; it converts and uploads, waiting at least `interval` seconds between
commits to one repo (the Hub allows about 128 commits an hour), so shards sealed meanwhile share
a commit. After a commit it looks once more, `interval` later, to publish the final state of
sessions that ended (without a commit per episode while they run).

Life cycle: `start()`; `notify()` from the writer; `finish(timeout)` after the writer stopped:
everything due is published at once, for at most `timeout` seconds; the journal lets a later run
(`gymrec-writer push ENV` or the next `--push`) send whatever is left.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared.errors import GymrecError
from shared.layout import DatasetLayout
from writer.hub.card import repo_id_for
from writer.hub.client import HubAuthError, HubClient, PublishError, Transient
from writer.hub.upload import RetryPolicy, publish
from writer.store.shards import ShardInfo

log = logging.getLogger("gymrec.writer")
_STOP = Path("/")  # queue sentinel (never a dataset folder)


@dataclass(frozen=True)
class PushSettings:
    repo_template: str
    interval: float = 60.0  # seconds between commits to one repo
    nice: int = 10  # added to the worker thread's nice value (Linux: per thread)
    retry: RetryPolicy = RetryPolicy(attempts=3, base=2.0, cap=30.0)
    max_backoff: float = 600.0  # seconds between passes while the Hub stays unavailable


class UploadWorker:
    def __init__(self, client: HubClient, data_dir: Path, settings: PushSettings):
        self.client = client
        self.data_dir = Path(data_dir)
        self.settings = settings
        self._queue: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="upload", daemon=True)
        self._finishing = threading.Event()
        self._disabled = False
        self._in_pass = False
        self._stopped: set[Path] = set()  # folders with an error that retrying will not mend
        self._due: dict[Path, tuple[float, str]] = {}  # folder → (when, metadata_only mode)
        self._not_before: dict[Path, float] = {}  # after a commit: interval; after failures: more
        self._failures: dict[Path, int] = {}
        self._repos: dict[Path, str] = {}
        self.reports: list = []

    def notify(self, layout: DatasetLayout, shard: ShardInfo | None = None) -> None:
        """The `on_sealed` hook: called in the writer's thread; only queues the folder."""
        self._queue.put(layout.root)

    def start(self) -> UploadWorker:
        # Whatever earlier runs left unpublished goes first.
        for root in sorted(self.data_dir.iterdir()) if self.data_dir.is_dir() else []:
            if DatasetLayout(root).manifest.exists():
                self._queue.put(root)
        self._thread.start()
        return self

    def busy(self) -> bool:
        """Whether a pass is running or due (for messages only: it may change at any time)."""
        return self._in_pass or bool(self._due) or not self._queue.empty()

    def finish(self, timeout: float) -> bool:
        """Publish everything due now; True if that completed within `timeout` seconds."""
        self._finishing.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.settings.nice)
        except (AttributeError, OSError):
            pass  # not Linux, or not allowed: run at the writer's priority
        while True:
            self._take_queued(self._wait_time())
            now = time.monotonic()
            ready = [r for r, (when, _) in self._due.items()
                     if when <= now or self._finishing.is_set()]
            for root in sorted(ready):
                _, mode = self._due.pop(root)
                if not self._disabled and root not in self._stopped:
                    self._in_pass = True
                    self._pass(root, "always" if self._finishing.is_set() else mode)
                    self._in_pass = False
            if self._finishing.is_set() and (self._disabled or not self._due):
                return

    def _wait_time(self) -> float | None:
        if self._finishing.is_set():
            return 0.0
        if not self._due:
            return None
        return max(0.0, min(when for when, _ in self._due.values()) - time.monotonic())

    def _take_queued(self, timeout: float | None) -> None:
        try:
            item = self._queue.get(timeout=timeout) if timeout != 0.0 else self._queue.get_nowait()
        except queue.Empty:
            return
        while True:
            if item != _STOP:
                self._schedule(item, "always")
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return

    def _schedule(self, root: Path, mode: str) -> None:
        when = max(time.monotonic(), self._not_before.get(root, 0.0))
        current = self._due.get(root)
        if current is not None:
            when = min(when, current[0])
            mode = "always" if "always" in (mode, current[1]) else mode
        self._due[root] = (when, mode)

    def _pass(self, root: Path, mode: str) -> None:
        try:
            repo_id = self._repo_for(root)
            report = publish(DatasetLayout(root), self.client, repo_id, retry=self.settings.retry,
                             metadata_only=mode)
        except Transient as exc:
            failures = self._failures.get(root, 0) + 1
            self._failures[root] = failures
            wait = min(self.settings.max_backoff,
                       max(self.settings.interval, 30.0) * 2 ** (failures - 1))
            self._not_before[root] = time.monotonic() + wait
            log.warning("upload of %s: %s; next try in %.0f s", root.name, exc, wait)
            if not self._finishing.is_set():
                self._schedule(root, "always")
            return
        except HubAuthError as exc:
            log.error("uploads stopped: %s (recording goes on locally)", exc)
            self._disabled = True
            return
        except GymrecError as exc:
            log.error("upload of %s stopped: %s (recording goes on locally)", root.name, exc)
            self._stopped.add(root)
            return
        except Exception as exc:  # a bug must not end the thread silently, nor the writer
            log.error("upload of %s failed: %s: %s", root.name, type(exc).__name__, exc)
            self._not_before[root] = time.monotonic() + self.settings.max_backoff
            return
        self._failures.pop(root, None)
        self.reports.append(report)
        if report.commits:
            self._not_before[root] = time.monotonic() + self.settings.interval
            log.info("upload of %s: %d shard(s), %d rows in %d commit(s) to %s", root.name,
                     report.shards, report.rows, len(report.commits), repo_id)
            self._schedule(root, "final")

    def _repo_for(self, root: Path) -> str:
        if root not in self._repos:
            template = self.settings.repo_template
            user = self.client.user() if "{user}" in template else None
            repo_id = repo_id_for(template, root.name, user)
            other = next((r for r, rid in self._repos.items() if rid == repo_id), None)
            if other is not None:
                raise PublishError(f"{repo_id} already receives {other.name}; "
                                   "put {env} in --repo to give each env its own repo")
            self._repos[root] = repo_id
        return self._repos[root]
