"""The headless recording loop: an agent plays episodes as fast as the pipeline goes.

Each step becomes one message: the frame the agent saw, its action, and what the action produced.
When an episode ends (or is cut by `max_steps`, or interrupted), its final observation follows.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder.agents import AGENTS
from recorder.envs import EnvChoice, frame_of, make_env
from recorder.link import WriterLink
from recorder.seeds import episode_seed
from recorder.session import new_session_id, session_start
from recorder.ticks import Pacer, TickStats
from shared.security import ClientKeys
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
    start = session_start(progress.session, settings.choice, env, observation, settings.fps,
                          settings.codec, settings.quality, settings.base_seed,
                          settings.collector, settings.max_steps)
    link = WriterLink(settings.endpoint, start, settings.buffer_bytes, curve=settings.curve)
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
            progress.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if ticks.count:
                progress.tick_p50_ms, progress.tick_p99_ms, progress.tick_max_ms = ticks.summary()
            report(progress)

    ticks = TickStats()
    began = time.perf_counter()
    pacer = Pacer(settings.fps) if settings.realtime else None
    reason = "completed"
    try:
        for episode in range(episodes_for(worker, settings)):
            seed = episode_seed(settings.base_seed, worker, episode)
            if episode > 0:
                observation, _ = env.reset(seed=seed)
            agent.reset(seed)
            _play_episode(env, agent, link, settings, episode, seed, observation, progress,
                          publish, ticks, pacer)
            progress.episodes += 1
    except KeyboardInterrupt:
        reason = "interrupted"
        progress.interrupted = True
    finally:
        env.close()
        link.send_session_end(reason)
        link.drain(settings.drain_timeout, on_wait=publish)
        progress.unconfirmed = link.outbox.unacked
        progress.elapsed_s = time.perf_counter() - began
        progress.done = True
        publish(force=True)
        link.close()
    return progress


def _play_episode(env, agent, link: WriterLink, settings: RecordSettings, episode: int,
                  seed: int, observation, progress: WorkerProgress, publish, ticks: TickStats,
                  pacer: Pacer | None) -> None:
    desc_space = link.action_space
    step = 0
    seen_at = time.time()
    terminated = truncated = False
    outcome = "aborted"
    try:
        while True:
            if pacer is not None:
                progress.late_frames += pacer.wait()
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
            if terminated or truncated:
                outcome = "terminated" if terminated else "truncated"
                break
    finally:
        link.send_episode_end(episode, step, seed, seen_at, outcome, terminated, truncated,
                              frame_of(observation, env))
        link.pump()

