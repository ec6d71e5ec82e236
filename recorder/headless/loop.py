"""The headless recording loop: an agent plays episodes as fast as the pipeline goes.

Each step becomes one message: the frame the agent saw, its action, and what the action produced.
When an episode ends (or is cut by `max_steps`, or interrupted), its final observation follows.
"""

from __future__ import annotations

import dataclasses
import gc
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.agents import AgentSource, make_agent
from recorder.delivery.link import AGENT_BATCH_STEPS, WriterLink
from recorder.envs import EnvChoice, first_reset, frame_of, make_env, native_fps
from recorder.episode import Episode
from recorder.headless.stop import StopRequest
from recorder.pacing import FramePacer
from recorder.seeds import episode_seed, start_episode
from recorder.session_start import new_session_id, session_start
from recorder.ticks import TickStats
from shared.errors import WriterUnavailable
from shared.security import ClientKeys, is_loopback
from shared.shm import shm_available


@dataclass(frozen=True)
class RecordSettings:
    choice: EnvChoice
    endpoint: str
    data_dir: Path
    episodes: int
    max_steps: int | None
    base_seed: int
    agent: AgentSource
    codec: str
    quality: int
    fps: float | None  # None: the env's own rate (native_fps)
    buffer_bytes: int
    drain_timeout: float
    collector: str
    workers: int = 1
    stall_timeout: float = 30.0
    # Pace steps at `fps` like a game would, and never wait for the writer: a full resend
    # buffer becomes a counted gap. Off: as fast as the pipeline goes (waits for buffer room).
    realtime: bool = False
    curve: ClientKeys | None = None
    # Pixels through a shared-memory ring when the writer is on this machine (loopback).
    shared_memory: bool = True
    # Steps per message as fast as the pipeline goes (realtime sends each step at once).
    batch_steps: int = AGENT_BATCH_STEPS
    # Encode frames here and send images (recorder.cli.encode_in_recorder), not raw pixels.
    encode_frames: bool = False


@dataclass
class WorkerProgress:
    worker: int
    session: str = ""
    episodes: int = 0
    steps: int = 0
    steps_durable: int = 0
    steps_dropped: int = 0
    backlog: int = 0
    unconfirmed: int = 0
    acked_seq: int = -1
    late_frames: int = 0
    tick_p50_ms: float = 0.0
    tick_p99_ms: float = 0.0
    tick_max_ms: float = 0.0
    rss_mb: float = 0.0
    elapsed_s: float = 0.0  # from the first step until everything was confirmed (or given up)
    socket_full: int = 0
    resends: int = 0
    done: bool = False
    interrupted: bool = False


def all_episodes(settings: RecordSettings) -> Callable[[], int | None]:
    """The episode numbers of a recording with one worker: 0, 1, ... then None. (Workers that
    share a recording get theirs from their parent: workers.py.)"""
    numbers = iter(range(settings.episodes))
    return lambda: next(numbers, None)


def record_worker(settings: RecordSettings, worker: int,
                  report: Callable[[WorkerProgress], None], *, stop: StopRequest | None = None,
                  notify: Callable[[str], None] | None = None,
                  go: threading.Event | None = None,
                  next_episode: Callable[[], int | None] | None = None) -> WorkerProgress:
    """Play episodes into one session until `next_episode()` (default: `all_episodes`) says
    None; returns the final counts. It gives the recording's number of the next episode to
    play, the key of its seed: the same episodes whichever worker plays them. `stop` (by
    default one taking this process's SIGINT/SIGTERM) ends it early, in order; `notify` gets
    the lines worth telling the person running it; `go`, when given, is awaited before the
    session opens (the env is made and reset meanwhile)."""
    own_stop = stop is None
    stop = StopRequest() if stop is None else stop
    next_episode = next_episode or all_episodes(settings)
    number = next_episode()
    progress = WorkerProgress(worker, session=new_session_id())
    if number is None:  # more workers than episodes: nothing to play, no session
        progress.done = True
        report(progress)
        if own_stop:
            stop.restore()
        return progress
    first_seed = episode_seed(settings.base_seed, number)
    env = make_env(settings.choice, first_seed=first_seed)
    if settings.fps is None:
        settings = dataclasses.replace(settings, fps=native_fps(env))
    options = {k: v for k, v in settings.choice.kwargs.items() if k != "render_mode"}
    agent = make_agent(settings.agent, env.action_space, env_id=settings.choice.env_id,
                       env_options=options)
    observation, reset_info = first_reset(env, first_seed)
    while go is not None and not go.wait(0.05) and not stop.requested:
        pass  # the parent says go once the writer answers (workers.py)
    if stop.requested:  # stopped while starting (making an env takes seconds): no session
        env.close()
        progress.done = progress.interrupted = True
        report(progress)
        if own_stop:
            stop.restore()
        return progress
    link = _open_session(settings, progress.session, env, observation)
    link.give_up = lambda: stop.hurry  # a second Ctrl-C: stop waiting for the writer
    ticks = TickStats()
    report_progress = _ProgressReport(link=link, progress=progress, ticks=ticks, report=report,
                                      notify=notify or _print)
    # Everything made so far (modules, the env) lives for the whole session: keep it out of the
    # garbage collector's full passes, which otherwise stall a tick for tens of milliseconds.
    # (No collection first: it took ~25 ms before the first step, to free a few kilobytes.)
    gc.freeze()
    began = time.perf_counter()
    pacer = FramePacer(settings.fps, keep=1) if settings.realtime else None
    reason = "completed"
    player = _Player(agent=agent, link=link, settings=settings, progress=progress,
                     report_progress=report_progress, ticks=ticks, pacer=pacer, stop=stop)
    try:
        episode = 0  # its index in this session
        while number is not None:
            seed = episode_seed(settings.base_seed, number)
            start_state = None  # the first episode was reset with its seed (above)
            if episode > 0:  # unseeded from a snapshot where seeded resets are costly (ALE)
                start = start_episode(env, seed)
                observation, reset_info, start_state = start
            agent.reset(seed)
            _play_episode(Episode(sink=link, env=env, index=episode, seed=seed,
                                  start_state=start_state,
                                  observation=observation, action_space=link.action_space,
                                  max_steps=settings.max_steps, info=reset_info,
                                  record=settings.choice.record),
                          player)
            if stop.requested:
                break
            progress.episodes += 1
            episode += 1
            number = next_episode()
    except KeyboardInterrupt:  # only if SIGINT came before `stop` could take it
        stop.raise_to(1)
    finally:
        if stop.requested:
            reason = "interrupted"
            progress.interrupted = True
        env.close()
        link.send_session_end(reason)
        link.drain(settings.drain_timeout, on_wait=report_progress)
        progress.unconfirmed = link.outbox.unacked
        progress.elapsed_s = time.perf_counter() - began
        progress.done = True
        report_progress(force=True)
        link.close()
        if own_stop:
            stop.restore()
    if link.refused:
        raise WriterUnavailable(link.refused)
    return progress


def _open_session(settings: RecordSettings, session: str, env: Any,
                  observation: Any) -> WriterLink:
    """The link of a new session playing `env` (reset to `observation`)."""
    frame_bytes = frame_of(observation, env).nbytes
    slots = ring_slots(settings.endpoint, settings.buffer_bytes, frame_bytes,
                       settings.shared_memory and not settings.encode_frames)
    start = session_start(session, settings.choice, env, observation,
                          fps=settings.fps, codec=settings.codec, quality=settings.quality,
                          base_seed=settings.base_seed, collector=settings.collector,
                          max_steps=settings.max_steps, shm_slots=slots,
                          player=settings.agent.player, agent_sha256=settings.agent.sha256)
    return WriterLink(settings.endpoint, start, settings.buffer_bytes, curve=settings.curve,
                      batch_steps=1 if settings.realtime else settings.batch_steps,
                      encode_frames=settings.encode_frames)


class _ProgressReport:
    """Copies the link's counts into `progress` and hands it to `report`, at most every 0.2 s
    (`force`: now); says once, through `notify`, when the writer had given up on the session."""

    def __init__(self, *, link: WriterLink, progress: WorkerProgress, ticks: TickStats,
                 report: Callable[[WorkerProgress], None], notify: Callable[[str], None]):
        self.link, self.progress, self.ticks = link, progress, ticks
        self.report, self.notify = report, notify
        self.last_report = 0.0
        self.revived = 0

    def __call__(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_report <= 0.2:
            return
        self.last_report = now
        link, progress = self.link, self.progress
        if link.stats.revived > self.revived:
            self.revived = link.stats.revived
            self.notify(f"the writer had closed session {progress.session} as aborted while "
                        "this recorder was silent (stopped?); the session continues, nothing lost")
        progress.steps_durable = link.outbox.steps_durable
        progress.steps_dropped = link.outbox.steps_dropped
        progress.backlog = link.outbox.unacked
        progress.acked_seq = link.outbox.acked_seq
        progress.socket_full = link.stats.socket_full
        progress.resends = link.stats.resends
        progress.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if self.ticks.count:
            progress.tick_p50_ms, progress.tick_p99_ms, progress.tick_max_ms = self.ticks.summary()
        self.report(progress)


def ring_slots(endpoint: str, buffer_bytes: int, frame_bytes: int, enabled: bool = True) -> int:
    """Slots of the shared-memory pixel ring (0: pixels go through the socket). The ring is the
    resend buffer, so it gets the buffer's size."""
    if not (enabled and is_loopback(endpoint) and shm_available()):
        return 0
    return max(2, buffer_bytes // frame_bytes)


@dataclass(frozen=True, kw_only=True)
class _Player:
    """What plays a worker's episodes, one after the other."""

    agent: Any
    link: WriterLink
    settings: RecordSettings
    progress: WorkerProgress
    report_progress: Callable[[], None]  # at most every 0.2 s
    ticks: TickStats
    pacer: FramePacer | None  # paces steps at fps (realtime), or None: as fast as it goes
    stop: StopRequest


def _play_episode(episode: Episode, player: _Player) -> None:
    """Play until the episode ends, is cut or a stop is requested; its end is always sent."""
    link, progress, pacer = player.link, player.progress, player.pacer
    outcome = "aborted"
    room = episode.frame.nbytes + episode.extras_bytes  # a step's (its extras keep their shapes)
    try:
        while not player.stop.requested:
            if pacer is not None:
                pacer.wait()
                progress.late_frames = pacer.late
            started = time.perf_counter()
            action = player.agent.act(episode.observation)
            result = episode.env.step(action)
            if pacer is None:
                link.wait_for_room(room, player.settings.stall_timeout)
            episode.record(action, result)
            progress.steps += 1
            link.pump()
            player.ticks.add(time.perf_counter() - started)
            player.report_progress()
            if link.refused:
                raise WriterUnavailable(link.refused)
            if episode.over:
                outcome = None  # terminated or truncated, as the last step says
                break
    finally:
        episode.end(outcome)
        link.pump()


def _print(line: str) -> None:
    print(f"gymrec-record: {line}", file=sys.stderr)
