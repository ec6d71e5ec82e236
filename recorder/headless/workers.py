"""The recorder's worker processes (headless, `--workers N`) and how a recording stops.

One scheme, whichever process is signalled:
- Each worker is a spawned process joined to its parent by two pipes: reports (progress,
  notices, failures) go up, stop levels (see stop.py) come down.
- SIGINT or SIGTERM to the parent's pid, or to the whole process group (a terminal's Ctrl-C),
  raises the parent's level, which it sends to every worker. A worker also counts the signals it
  gets itself and goes by the larger level, so a group's signal counts once.
- A worker dies with its parent: PR_SET_PDEATHSIG turns the parent's death into a SIGUSR1, and
  end-of-file on the stop pipe says the same. The worker then stops as at level 1 (its episode
  ends as aborted, what it sent is drained, its shared-memory ring removed) and exits. (Not
  SIGTERM: Linux sends it once per thread of the dying parent, and two would mean "hurry".)
- Pipes, not multiprocessing queues: no named semaphores in /dev/shm to leak, and a report to a
  parent that is gone fails at once instead of blocking the worker's exit.
- Workers start with SIGINT/SIGTERM ignored (an exec keeps SIG_IGN), so a signal during their
  start-up (imports, env creation) cannot kill them half-made; they learn of it from the stop
  pipe. The parent holds (blocks) those signals meanwhile, so they wait for its handlers.
- A recording with one worker plays it in a thread of the recorder's own process instead: no
  interpreter to start and no module imported twice (seconds of a short run on a busy machine).
  The same pipes join it to the loop below, and it takes the same stop levels; the signals
  reach the recorder's handlers (StopRequest) as before. Unlike a worker process, it cannot
  outlive a SIGKILLed recorder to end its session: the writer closes that session as aborted
  once it is silent, as it does for the window's (everything it confirmed stays).
- Episodes are handed out, not split up front: a worker plays episode number `index` first (no
  round trip before it starts), then asks its parent for the next number (EpisodeWanted up,
  the number or none down the stop pipe) each time one ends. A worker whose episodes ran short
  does not idle while another plays its last few (an even split of random-length episodes
  left one core idle for ~10 % of a 12-episode Breakout run), and episode k has the same seed
  whichever worker plays it, however many there are.
- Workers start before the writer is known to answer (their imports and env creation, seconds,
  overlap the writer's start-up) and open no session until the parent says go: level 0 on the
  stop pipe, sent once `ready()` returned. If it raised, they get level 1 instead and end
  without a session.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from recorder.headless.loop import RecordSettings, WorkerProgress, record_worker
from recorder.headless.progress import ProgressView
from recorder.headless.stop import EXIT_CODES, STOP_SIGNALS, StopRequest
from shared.errors import GymrecError

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_GONE = signal.SIGUSR1  # what PR_SET_PDEATHSIG sends a worker


@dataclass(frozen=True, kw_only=True)
class WorkerFailure:
    """A GymrecError raised in a worker, as it crosses to the parent: its class, exit code and
    line (the parent raises it again, so the CLI reports it as if it happened there)."""

    worker: int
    error: str
    exit_code: int
    message: str

    @classmethod
    def of(cls, worker: int, exc: GymrecError) -> WorkerFailure:
        return cls(worker=worker, error=type(exc).__name__, exit_code=exc.exit_code,
                   message=str(exc))

    def to_error(self) -> GymrecError:
        err = _error_classes().get(self.error, GymrecError)(self.message)
        err.exit_code = self.exit_code
        return err


@dataclass(frozen=True, kw_only=True)
class WorkerNotice:
    """A line a worker has for the person running it (printed on stderr)."""

    worker: int
    message: str


@dataclass(frozen=True, kw_only=True)
class EpisodeWanted:
    """A worker finished an episode and asks for the number of its next (none: it is done)."""

    worker: int


@dataclass(frozen=True, kw_only=True)
class PoolResult:
    workers: list[WorkerProgress]
    stopped_by: int | None  # the first SIGINT/SIGTERM the recorder got
    cut_short: bool  # a second signal ended the wait for the writer

    @property
    def interrupted_code(self) -> int | None:
        """130 (SIGINT) or 143 (SIGTERM) when the recording was stopped early, else None."""
        if self.stopped_by is not None:
            return EXIT_CODES[self.stopped_by]
        return 130 if any(w.interrupted for w in self.workers) else None


def run_workers(settings: RecordSettings,
                notify: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                stop: StopRequest | None = None,
                ready: Callable[[], None] = lambda: None) -> PoolResult:
    """Record with `settings.workers` processes, showing their progress; returns when all have
    ended. Raises the first worker's error, or GymrecError if a worker died. `stop`: the
    caller's (it then keeps SIGINT/SIGTERM handled after this returns). `ready()`: called
    once the workers are starting; they open their sessions when it returns, and end without
    one if it raises a GymrecError (raised again here once they have ended)."""
    own_stop = stop is None
    stop = StopRequest() if stop is None else stop  # before the workers exist
    try:
        ctx = mp.get_context("spawn")
        with _signals_held():
            pool = [_Worker(ctx, settings, w, in_process=settings.workers == 1)
                    for w in range(settings.workers)]
        latest = {w.index: WorkerProgress(w.index) for w in pool}
        failures: list[WorkerFailure] = []
        # Each worker's first episode is its own index: the rest go to whoever asks first.
        unplayed = iter(range(settings.workers, settings.episodes))
        not_ready = _go_when_ready(ready, pool, stop)
        with ProgressView(settings) as view:
            while any(w.open for w in pool):
                _forward(stop, pool)
                for worker in _readable(pool):
                    item = worker.receive()
                    if isinstance(item, EpisodeWanted):
                        # A stop goes down before the answer it explains: the worker must
                        # know it was stopped, not that the episodes ran out.
                        stopped = stop.requested
                        _forward(stop, [worker])
                        worker.grant(None if stopped else next(unplayed, None))
                    elif isinstance(item, WorkerProgress):
                        latest[worker.index] = item
                        view.update(list(latest.values()))
                    elif isinstance(item, WorkerNotice):
                        notify(f"gymrec-record: worker {item.worker}: {item.message}")
                    elif isinstance(item, WorkerFailure):
                        failures.append(item)
                    if isinstance(item, WorkerFailure) or (
                            item is None and not latest[worker.index].done):
                        stop.raise_to(1)  # one worker is out: the others stop in order
        for worker in pool:
            worker.join()
    finally:
        if own_stop:
            stop.restore()
    if not_ready is not None:
        raise not_ready
    for worker in pool:
        if worker.crash is not None:  # a bug in this process: its own traceback
            raise worker.crash
    if failures:
        raise failures[0].to_error()
    for worker in pool:
        if not latest[worker.index].done:
            raise GymrecError(f"recorder worker {worker.index} died "
                              f"(exit code {worker.exitcode})")
    return PoolResult(workers=list(latest.values()), stopped_by=stop.first_signal,
                      cut_short=stop.hurry)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Start workers with SIGINT/SIGTERM ignored (see the module's docstring). Blocked here
    meanwhile, a signal stays pending (Linux never drops a blocked signal as ignored, and no
    other thread of ours takes them: see local_writer) until our handlers are back; only one
    landing between the two calls below (microseconds) would be dropped."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _go_when_ready(ready: Callable[[], None], pool: list[_Worker],
                   stop: StopRequest) -> GymrecError | None:
    """Let the workers open their sessions once `ready()` returns; its error otherwise (the
    workers are stopped before they open any)."""
    try:
        ready()
    except GymrecError as exc:
        stop.raise_to(1)
        return exc
    if stop.requested:
        return None  # _forward sends them the stop level instead
    for worker in pool:
        worker.ask_to_stop(0)  # level 0: go
    return None


def _forward(stop: StopRequest, pool: list[_Worker]) -> None:
    for worker in pool:
        if stop.level > worker.sent_level:
            worker.ask_to_stop(stop.level)


def _readable(pool: list[_Worker]) -> list[_Worker]:
    by_conn = {w.reports: w for w in pool if w.open}
    return [by_conn[c] for c in wait(list(by_conn), timeout=0.2)]


class _Worker:
    """The parent's side of one worker: a process, or a thread of this one (`in_process`)."""

    def __init__(self, ctx, settings: RecordSettings, index: int, in_process: bool = False):
        self.index = index
        reports, their_reports = ctx.Pipe(duplex=False)
        their_control, control = ctx.Pipe(duplex=False)
        self.process = self.thread = None
        self.crash: BaseException | None = None
        if in_process:
            self.thread = threading.Thread(target=self._run_here, name=f"gymrec-worker-{index}",
                                           args=(settings, their_reports, their_control),
                                           daemon=True)
            self.thread.start()
        else:
            self.process = ctx.Process(target=_worker_main, name=f"gymrec-worker-{index}",
                                       args=(settings, index, their_reports, their_control,
                                             os.getpid()), daemon=True)
            self.process.start()
            their_reports.close()  # the worker holds its own copies: EOF once it is gone
            their_control.close()
        self.reports: Connection = reports
        self.control: Connection = control
        self.open = True
        self.sent_level = 0

    def _run_here(self, settings: RecordSettings, reports: Connection,
                  control: Connection) -> None:
        try:
            _worker_body(settings, self.index, reports, control, StopRequest())
        except BaseException as exc:  # noqa: BLE001 - raised again by run_workers
            self.crash = exc

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode if self.process is not None else None

    def receive(self):
        """The next report, or None once the worker is gone (end of file)."""
        try:
            return self.reports.recv()
        except (EOFError, OSError):
            self.open = False
            self.reports.close()
            return None

    def ask_to_stop(self, level: int) -> None:
        """Send a stop level (0: go, open the session)."""
        self.sent_level = level
        try:
            self.control.send_bytes(bytes([level]))
        except OSError:
            pass  # already gone

    def grant(self, episode: int | None) -> None:
        """The number of the worker's next episode (None: there is none), 8 bytes where a stop
        level is 1."""
        try:
            self.control.send_bytes((-1 if episode is None else episode).to_bytes(8, "big",
                                                                                  signed=True))
        except OSError:
            pass  # already gone

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
        else:
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.control.close()


# -- inside a worker process ------------------------------------------------------------------

def _worker_main(settings: RecordSettings, index: int, reports: Connection,
                 control: Connection, parent: int) -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    stop = StopRequest()  # replaces the SIG_IGN we started with
    signal.signal(_PARENT_GONE, lambda *_: stop.raise_to(1))
    _die_with_parent()
    if os.getppid() != parent:
        stop.raise_to(1)  # the parent died before PR_SET_PDEATHSIG was in place
    _worker_body(settings, index, reports, control, stop)


def _worker_body(settings: RecordSettings, index: int, reports: Connection,
                 control: Connection, stop: StopRequest) -> None:
    """Record this worker's episodes, taking stop levels from `control` and sending reports up
    `reports` (closed at the end: the parent's end of file)."""
    go = threading.Event()
    grants: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    threading.Thread(target=_follow_parent, args=(control, stop, go, grants), daemon=True,
                     name="stop-levels").start()
    send = _Sender(reports)
    started = False

    def next_episode() -> int | None:
        nonlocal started
        if not started:  # its first is its own index (run_workers hands out the rest)
            started = True
            return index if index < settings.episodes else None
        send(EpisodeWanted(worker=index))
        while not stop.requested:  # a parent that is gone stops us (_follow_parent)
            try:
                return grants.get(timeout=0.05)
            except queue.Empty:
                pass
        return None

    try:
        record_worker(settings, index, send, stop=stop, go=go, next_episode=next_episode,
                      notify=lambda line: send(WorkerNotice(worker=index, message=line)))
    except GymrecError as exc:
        send(WorkerFailure.of(index, exc))
    finally:
        stop.restore()
        reports.close()


def _die_with_parent() -> None:
    """Ask Linux for a signal when the parent dies (elsewhere: the stop pipe's EOF only)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, _PARENT_GONE, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _follow_parent(control: Connection, stop: StopRequest, go: threading.Event,
                   grants: queue.SimpleQueue) -> None:
    """Stop levels from the parent (any of them, 0 included, means go: the writer answers) and
    episode numbers (into `grants`: see _Worker.grant); end of file means the parent is gone:
    stop (level 1). Closes `control` then (only this thread reads it: closed under a read, it
    would fail in other ways than EOF)."""
    while True:
        try:
            data = control.recv_bytes()
        except (EOFError, OSError):
            stop.raise_to(1)
            go.set()
            control.close()
            return
        if len(data) == 8:
            number = int.from_bytes(data, "big", signed=True)
            grants.put(None if number < 0 else number)
            continue
        stop.raise_to(max(data))
        go.set()


class _Sender:
    """Reports to the parent; once it is gone they are dropped (the recording still ends in
    order: the writer keeps what it confirmed)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.open = True

    def __call__(self, item) -> None:
        if self.open:
            try:
                self.conn.send(item)
            except OSError:
                self.open = False


def _error_classes() -> dict[str, type[GymrecError]]:
    found: dict[str, type[GymrecError]] = {}
    todo = [GymrecError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found
