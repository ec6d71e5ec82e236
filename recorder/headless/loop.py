"""The headless recording loop: an agent plays episodes as fast as the pipeline goes.

Each step becomes one message: the frame the agent saw, its action, and what the action produced.
When an episode ends (or is cut by `max_steps`, or interrupted), its final observation follows.
"""

from __future__ import annotations

import gc
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder.agents import AGENTS
from recorder.delivery.link import WriterLink
from recorder.envs import EnvChoice, frame_of, make_env
from recorder.pacing import FramePacer
from recorder.seeds import episode_seed
from recorder.session_start import new_session_id, session_start
from recorder.ticks import TickStats
from shared.errors import WriterUnavailable
from shared.security import ClientKeys, is_loopback
from shared.shm import shm_available
from shared.spaces import action_to_wire


@dataclass(frozen=True)
class RecordSettings:
    choice: EnvChoice
    endpoint: str
    data_dir: Path
    episodes: int
    max_steps: int | None
    base_seed: int
    agent: str
    codec: str
    quality: int
    fps: float
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
    batch_steps: int = 16


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


def episodes_for(worker: int, settings: RecordSettings) -> int:
    """Episodes are shared out as evenly as possible between the workers."""
    share, extra = divmod(settings.episodes, settings.workers)
    return share + (1 if worker < extra else 0)


def record_worker(settings: RecordSettings, worker: int,
                  report: Callable[[WorkerProgress], None]) -> WorkerProgress:
    """Play this worker's episodes into one session; returns the final counts."""
    env = make_env(settings.choice)
    agent = AGENTS[settings.agent](env.action_space)
    progress = WorkerProgress(worker, session=new_session_id())
    first_seed = episode_seed(settings.base_seed, worker, 0)
    observation, _ = env.reset(seed=first_seed)
    frame_bytes = frame_of(observation, env).nbytes
    slots = ring_slots(settings.endpoint, settings.buffer_bytes, frame_bytes,
                       settings.shared_memory)
    start = session_start(progress.session, settings.choice, env, observation, settings.fps,
                          settings.codec, settings.quality, settings.base_seed,
                          settings.collector, settings.max_steps, shm_slots=slots)
    link = WriterLink(settings.endpoint, start, settings.buffer_bytes, curve=settings.curve,
                      batch_steps=1 if settings.realtime else settings.batch_steps)
    last_report = 0.0

    def publish(force: bool = False) -> None:
        nonlocal last_report
        now = time.monotonic()
        if force or now - last_report > 0.2:
            last_report = now
            progress.steps_durable = link.outbox.steps_durable
            progress.steps_dropped = link.outbox.steps_dropped
            progress.backlog = link.outbox.unacked
            progress.acked_seq = link.outbox.acked_seq
            progress.socket_full = link.stats.socket_full
            progress.resends = link.stats.resends
            progress.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if ticks.count:
                progress.tick_p50_ms, progress.tick_p99_ms, progress.tick_max_ms = ticks.summary()
            report(progress)

    ticks = TickStats()
    # Everything made so far (modules, the env) lives for the whole session: keep it out of the
    # garbage collector's full passes, which otherwise stall a tick for tens of milliseconds.
    gc.collect()
    gc.freeze()
    began = time.perf_counter()
    pacer = FramePacer(settings.fps, keep=1) if settings.realtime else None
    stop = StopRequest()
    reason = "completed"
    try:
        for episode in range(episodes_for(worker, settings)):
            seed = episode_seed(settings.base_seed, worker, episode)
            if episode > 0:
                observation, _ = env.reset(seed=seed)
            agent.reset(seed)
            _play_episode(env, agent, link, settings, episode, seed, observation, progress,
                          publish, ticks, pacer, stop)
            if stop.requested:
                break
            progress.episodes += 1
    except KeyboardInterrupt:
        stop.requested = True
    finally:
        stop.restore()
        if stop.requested:
            reason = "interrupted"
            progress.interrupted = True
        env.close()
        link.send_session_end(reason)
        link.drain(settings.drain_timeout, on_wait=publish)
        progress.unconfirmed = link.outbox.unacked
        progress.elapsed_s = time.perf_counter() - began
        progress.done = True
        publish(force=True)
        link.close()
    if link.refused:
        raise WriterUnavailable(link.refused)
    return progress


class StopRequest:
    """Ctrl-C (SIGINT) as a flag the loop reads between steps, so a step is never cut between
    `env.step` and its message: the episode then ends as aborted, everything sent is kept."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def ring_slots(endpoint: str, buffer_bytes: int, frame_bytes: int, enabled: bool = True) -> int:
    """Slots of the shared-memory pixel ring (0: pixels go through the socket). The ring is the
    resend buffer, so it gets the buffer's size."""
    if not (enabled and is_loopback(endpoint) and shm_available()):
        return 0
    return max(2, buffer_bytes // frame_bytes)


def _play_episode(env, agent, link: WriterLink, settings: RecordSettings, episode: int,
                  seed: int, observation, progress: WorkerProgress, publish, ticks: TickStats,
                  pacer: FramePacer | None, stop: StopRequest) -> None:
    desc_space = link.action_space
    step = 0
    seen_at = time.time()
    terminated = truncated = False
    outcome = "aborted"
    try:
        while not stop.requested:
            if pacer is not None:
                pacer.wait()
                progress.late_frames = pacer.late
            started = time.perf_counter()
            frame = frame_of(observation, env)
            action = agent.act(observation)
            observation, reward, terminated, truncated, _ = env.step(action)
            if settings.max_steps is not None and step + 1 >= settings.max_steps:
                truncated = True
            if pacer is None:
                link.wait_for_room(frame.nbytes, settings.stall_timeout)
            link.send_step(episode, step, seed, seen_at, action_to_wire(action, desc_space),
                           float(reward), terminated, truncated, frame)
            seen_at = time.time()
            step += 1
            progress.steps += 1
            link.pump()
            ticks.add(time.perf_counter() - started)
            publish()
            if link.refused:
                raise WriterUnavailable(link.refused)
            if terminated or truncated:
                outcome = "terminated" if terminated else "truncated"
                break
    finally:
        link.send_episode_end(episode, step, seed, seen_at, outcome, terminated, truncated,
                              frame_of(observation, env))
        link.pump()

