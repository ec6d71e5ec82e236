"""Finding a writer, or starting a local one when none answers, and keeping it running.

A writer started here lives in its own session (process group), so a terminal's Ctrl-C, which
goes to the recorder's whole group, does not reach it: it confirms everything the recorder still
sends, then exits by itself once no session has been open, and no recorder has probed it, for
`IDLE_EXIT_SECONDS`. The recorder does not wait for that: it returns once its data is durable.

While a recording runs, `kept_alive` keeps a local writer there: one started here is started
again if it exits; one found running (another recorder's, which may be just exiting idle) is
probed every `WATCH_SECONDS`, which keeps it from idling out, and replaced when it stops
answering. Its crash recovery and the recorder's resend buffer make a restart exact.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import (
    EndpointBusy,
    GymrecError,
    StorageError,
    UsageError,
    WriterUnavailable,
)
from shared.security import ClientKeys


def probe_writer(endpoint: str, timeout: float, curve: ClientKeys | None = None):
    """`recorder.delivery.link.probe_writer`, imported when first needed: a recorder that finds
    nothing listening starts its writer before importing ZeroMQ and the protocol (~0.1 s)."""
    from recorder.delivery.link import probe_writer as probe

    return probe(endpoint, timeout=timeout, curve=curve)


def writer_proven(reply) -> bool:
    from recorder.delivery.link import writer_proven as proven

    return proven(reply)

IDLE_EXIT_SECONDS = 2  # an auto-started writer exits once idle this long (no session, no probe)
WATCH_SECONDS = 0.5  # how often kept_alive probes a writer it did not start
START_PATIENCE = 3.0  # seconds a writer just exiting may hold the folder or port before ours


@dataclass
class WriterHandle:
    """A writer that answers at `endpoint` (or will: see `wait_ready`); `process` is set when
    this recorder started it; `log_path` when it may start one (a local writer, no CURVE)."""

    endpoint: str
    data_dir: Path
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    restarts: int = 0
    ready: threading.Event = field(default_factory=threading.Event)

    def wait_ready(self, give_up: Callable[[], bool] = lambda: False) -> None:
        """Return once the writer answers; raise what keeps a writer started here from starting
        (EndpointBusy, StorageError, WriterUnavailable). `give_up()` true: stop waiting (and
        return)."""
        if self.ready.is_set() or self.process is None:
            return
        self.process = _await_answer(self.process, self.endpoint, self.data_dir,
                                     self.log_path, give_up)
        if not give_up():
            self.ready.set()

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
        """Inside: a local writer that exits is started again (`notify` gets one line each
        time). A remote writer (CURVE keys) is its own host's to look after."""
        if self.log_path is None:
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
        missed = 0
        while not done.wait(0.2 if self.process is not None else WATCH_SECONDS):
            if not self.ready.is_set():
                continue  # still starting: wait_ready reports how that ends
            if self.process is not None:
                code = self.process.poll()
                if code is None:
                    continue
                what = f"the writer this recorder started exited (code {code})"
            else:
                # Another recorder's writer. The probe also keeps it from exiting idle; two
                # misses in a row (a busy writer may be slow to answer one): it is gone.
                missed = 0 if probe_writer(self.endpoint, timeout=1.0) is not None else missed + 1
                if missed < 2 or not nothing_listens(self.endpoint):
                    continue  # still bound: slow (a loaded machine), not gone
                what = "the writer this recorder was using stopped answering"
            try:
                self.process = _start_or_find(self.endpoint, self.data_dir, self.log_path,
                                              START_PATIENCE)
            except GymrecError as exc:
                notify(f"gymrec-record: {what} and could not be started again: {exc}; "
                       "trying again")
                done.wait(1.0)
                continue
            missed = 0
            if self.process is None:
                continue  # another writer took its place: watch that one
            self.restarts += 1
            notify(f"gymrec-record: {what}; started a new one")


def ensure_writer(endpoint: str, data_dir: Path, log_path: Path,
                  curve: ClientKeys | None = None, *, wait: bool = True) -> WriterHandle:
    """Return the writer at `endpoint`, starting one (writing to `data_dir`) when none answers.
    With CURVE keys the writer is a remote one: it is never started here. `wait=False`: return
    as soon as a writer started here runs, before it answers (`wait_ready` waits for that;
    meanwhile the caller can get on with its own start-up)."""
    if curve is None and nothing_listens(endpoint):
        reply = None  # refused at once: no need to wait out a probe
    else:
        reply = probe_writer(endpoint, timeout=0.5 if curve is None else 3.0, curve=curve)
        if reply is None and curve is None:
            # Something listens: a writer slow to answer (a busy machine) is likelier than a
            # squatter, and a writer started beside it would take its answers for its own.
            reply = probe_writer(endpoint, timeout=2.0)
    if reply is not None:
        if curve is None and not writer_proven(reply):
            # Anyone can listen on a loopback port first; our writer proves its secret.
            raise EndpointBusy(f"the program at {endpoint} is not a gymrec writer of this user "
                               f"(it cannot prove it holds {reply.data_dir}/.writer.secret); "
                               "choose another --endpoint")
        handle = WriterHandle(endpoint, Path(reply.data_dir),
                              log_path=log_path if curve is None else None)
        handle.ready.set()
        return handle
    if curve is not None:
        raise WriterUnavailable(f"no writer at {endpoint} accepted our CURVE key (is its public "
                                "key in the writer's allow-list, and the server key right?)")
    handle = WriterHandle(endpoint, data_dir, _spawn(endpoint, data_dir, log_path), log_path)
    if wait:
        handle.wait_ready()
    return handle


def nothing_listens(endpoint: str) -> bool:
    """True when a connection to `endpoint` is refused at once (no process listens there): a
    probe would only wait out its timeout. False when something accepts, or cannot tell."""
    kind, _, where = endpoint.partition("://")
    try:
        if kind == "tcp":
            host, _, port = where.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port)), timeout=0.2):
                return False
        if kind == "ipc":
            with socket.socket(socket.AF_UNIX) as unix:
                unix.settimeout(0.2)
                unix.connect(where)
                return False
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    except (OSError, ValueError):
        return False
    return False


def _spawn(endpoint: str, data_dir: Path, log_path: Path) -> subprocess.Popen:
    """Start a writer process (it answers a moment later: `_await_answer`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "writer.cli", "--endpoint", endpoint, "--data-dir",
           str(data_dir), "--exit-when-idle", str(IDLE_EXIT_SECONDS)]
    with open(log_path, "ab") as log:
        # Its own session: out of reach of the terminal's Ctrl-C (and hang-up), see above.
        return subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def _await_answer(process: subprocess.Popen, endpoint: str, data_dir: Path, log_path: Path,
                  give_up: Callable[[], bool] = lambda: False,
                  patience: float = START_PATIENCE) -> subprocess.Popen | None:
    """Wait (up to 60 s) until the writer started as `process` answers; returns it. When it
    could not start because a writer that is just exiting still holds the folder or the port,
    start another once they are free (up to `patience` s), or return None when a writer
    answers meanwhile (that one serves). Raises what else keeps it from starting."""
    log_path = Path(log_path)
    started = time.monotonic()
    deadline = started + 60
    while time.monotonic() < deadline and not give_up():
        if process.poll() is not None:
            failure, held = _startup_failure(endpoint, log_path, process.returncode)
            if not held or time.monotonic() - started > patience:
                raise failure
            time.sleep(0.1)
            # Start again only once nothing listens (the holder exited): a writer answering
            # meanwhile is the holder, and serves.
            while not nothing_listens(endpoint):
                if probe_writer(endpoint, timeout=0.3) is not None:
                    return None
                if time.monotonic() - started > patience:
                    raise failure
                time.sleep(0.1)
            process = _spawn(endpoint, data_dir, log_path)
            continue
        if nothing_listens(endpoint):
            time.sleep(0.02)  # not bound yet: no need for a probe
            continue
        if probe_writer(endpoint, timeout=0.5) is not None:
            return process
    if give_up():
        return process  # it may still answer; the caller stops anyway
    process.kill()
    raise WriterUnavailable(f"a local writer did not start within 60 s (log: {log_path})")


def _start_or_find(endpoint: str, data_dir: Path, log_path: Path,
                   patience: float) -> subprocess.Popen | None:
    """Start a writer and wait until it answers; None when another one answers instead."""
    process = _spawn(endpoint, data_dir, log_path)
    return _await_answer(process, endpoint, data_dir, log_path, patience=patience)


def _startup_failure(endpoint: str, log_path: Path, code: int) -> tuple[GymrecError, bool]:
    """Why a writer started here exited, as the error to raise, and whether it was held off by
    another process (a writer just exiting may hold the port or the folder: worth a retry)."""
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit code {code}"
    if "already in use" in last:
        return EndpointBusy(f"endpoint {endpoint} is in use by something that is not a gymrec "
                            "writer; choose another with --endpoint"), True
    if "another gymrec-writer" in last:
        # It holds the data folder yet did not answer us without keys: it requires CURVE
        # keys, or listens on another endpoint.
        return StorageError(f"{last.removeprefix('gymrec-writer: ')}, and it did not answer a "
                            f"recorder without keys at {endpoint} (does it require CURVE keys, "
                            "--curve-key and --server-key, or listen on another --endpoint?)"
                            ), True
    if "cannot use data folder" in last:
        return StorageError(last.removeprefix("gymrec-writer: ")), False
    return WriterUnavailable(f"the local writer failed to start: {last}"), False
