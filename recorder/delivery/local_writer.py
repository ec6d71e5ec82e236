"""Finding a writer, or starting a local one when none answers, and keeping it running.

A writer started here lives in its own session (process group), so a terminal's Ctrl-C, which
goes to the recorder's whole group, does not reach it: it confirms everything the recorder still
sends, then exits by itself once no session has been open for a few seconds. While a recording
runs, `kept_alive` starts it again if it dies (its crash recovery and the recorder's resend
buffer make the restart exact).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recorder.delivery.link import probe_writer, writer_proven
from shared.errors import (
    EndpointBusy,
    GymrecError,
    StorageError,
    UsageError,
    WriterUnavailable,
)
from shared.security import ClientKeys

IDLE_EXIT_SECONDS = 2  # an auto-started writer exits once no session was open this long


@dataclass
class WriterHandle:
    """A writer that answers at `endpoint`; `process` is set when this recorder started it."""

    endpoint: str
    data_dir: Path
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    restarts: int = 0

    def check_folder(self, data_dir: Path) -> None:
        """A writer that already answers writes where it was started to: raise UsageError when
        that is not `data_dir` (never silently elsewhere than the user asked for)."""
        theirs = Path(self.data_dir)
        same = theirs == data_dir or (theirs.is_dir() and data_dir.is_dir()
                                      and os.path.samefile(theirs, data_dir))
        if not same:
            raise UsageError(f"the writer at {self.endpoint} writes to {theirs}, not to "
                             f"--data-dir {data_dir}: stop it, drop --data-dir, or give another "
                             "--endpoint")

    def wait_for_exit(self, timeout: float, give_up: Callable[[], bool] = lambda: False) -> None:
        """An auto-started writer exits by itself once idle; make sure it did (after `timeout`
        seconds it is terminated). `give_up()` true: leave it to finish on its own."""
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if give_up():
                return
            if time.monotonic() > deadline:
                self.process.terminate()
                self.process.wait(10)
                return
            time.sleep(0.05)

    @contextmanager
    def kept_alive(self, notify: Callable[[str], None]) -> Iterator[None]:
        """Inside: a writer this recorder started that exits is started again (`notify` gets
        one line each time). A writer found running is someone else's to look after."""
        if self.process is None:
            yield
            return
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(done, notify), daemon=True,
                                   name="writer-watch")
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()

    def _watch(self, done: threading.Event, notify: Callable[[str], None]) -> None:
        # SIGINT/SIGTERM are the main thread's (workers.py relies on no other thread of ours
        # taking them while it holds them).
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
        while not done.wait(0.2):
            code = self.process.poll()
            if code is None:
                continue
            try:
                self.process = _start(self.endpoint, self.data_dir, self.log_path)
            except GymrecError as exc:
                notify(f"gymrec-record: the writer exited (code {code}) and could not be "
                       f"started again: {exc}; trying again")
                done.wait(1.0)
                continue
            self.restarts += 1
            notify(f"gymrec-record: the writer this recorder started exited (code {code}); "
                   "started a new one")


def ensure_writer(endpoint: str, data_dir: Path, log_path: Path,
                  curve: ClientKeys | None = None) -> WriterHandle:
    """Return the writer at `endpoint`, starting one (writing to `data_dir`) when none answers.
    With CURVE keys the writer is a remote one: it is never started here."""
    reply = probe_writer(endpoint, timeout=0.5 if curve is None else 3.0, curve=curve)
    if reply is not None:
        if curve is None and not writer_proven(reply):
            # Anyone can listen on a loopback port first; our writer proves its secret.
            raise EndpointBusy(f"the program at {endpoint} is not a gymrec writer of this user "
                               f"(it cannot prove it holds {reply.data_dir}/.writer.secret); "
                               "choose another --endpoint")
        return WriterHandle(endpoint, Path(reply.data_dir))
    if curve is not None:
        raise WriterUnavailable(f"no writer at {endpoint} accepted our CURVE key (is its public "
                                "key in the writer's allow-list, and the server key right?)")
    return WriterHandle(endpoint, data_dir, _start(endpoint, data_dir, log_path), log_path)


def _start(endpoint: str, data_dir: Path, log_path: Path) -> subprocess.Popen:
    """Start a writer and wait until it answers (up to 60 s)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "writer.cli", "--endpoint", endpoint, "--data-dir",
           str(data_dir), "--exit-when-idle", str(IDLE_EXIT_SECONDS)]
    with open(log_path, "ab") as log:
        # Its own session: out of reach of the terminal's Ctrl-C (and hang-up), see above.
        process = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise _startup_failure(endpoint, log_path, process.returncode)
        if probe_writer(endpoint, timeout=0.3) is not None:
            return process
    process.kill()
    raise WriterUnavailable(f"a local writer did not start within 60 s (log: {log_path})")


def _startup_failure(endpoint: str, log_path: Path, code: int):
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit code {code}"
    if "already in use" in last:
        return EndpointBusy(f"endpoint {endpoint} is in use by something that is not a gymrec "
                            "writer; choose another with --endpoint")
    if "another gymrec-writer" in last:
        # It holds the data folder yet did not answer us without keys: it requires CURVE
        # keys, or listens on another endpoint.
        return StorageError(f"{last.removeprefix('gymrec-writer: ')}, and it did not answer a "
                            f"recorder without keys at {endpoint} (does it require CURVE keys, "
                            "--curve-key and --server-key, or listen on another --endpoint?)")
    if "cannot use data folder" in last:
        return StorageError(last.removeprefix("gymrec-writer: "))
    return WriterUnavailable(f"the local writer failed to start: {last}")
