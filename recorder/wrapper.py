"""`record(env)`: record the episodes of a Gymnasium env (or vector env) that the user's own
loop plays, with the guarantees of `gymrec-record`.

    env = record(gym.make("ALE/Breakout-v5"), data_dir="data")
    obs, info = env.reset(seed=1)
    ...                        # their loop, their policy: env.step(action)
    env.close()                # returns once every step is durable (or raises saying why)

Each (sub-)env is one session through one WriterLink: the frame the policy saw, the action,
and what the step returned become one row; an episode's end sends its final observation. A
local writer is started when none answers. Seeds: a `reset(seed=s)` records s; a reset without
a seed gets one drawn by the wrapper unless `seed_resets=False`. An episode that starts from an
unseeded reset right after the previous one (a vector env's autoreset, or `seed_resets=False`)
is stored with seed -2 (CONTINUED): replaying the session's episodes in order reproduces it.
Only a first unseeded reset, or a reset with options, is not reproducible (seed -1).
On ALE, where a seeded reset reloads the ROM (~0.1 s), a later reset without a seed or options
is not seeded by the wrapper: it stays unseeded, as the user asked, and the snapshot taken just
before it is stored with its step 0 (seed -2 and a `start_state`), so it replays on its own.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from recorder.delivery.link import AGENT_BATCH_STEPS, WriterLink
from recorder.delivery.local_writer import ensure_writer
from recorder.envs import (
    choice_of_env,
    frame_of,
    info_reader,
    native_fps,
    platform_named,
    recording,
)
from recorder.episode import Episode
from recorder.headless.loop import ring_slots
from recorder.seeds import episode_seed, fresh_base_seed, start_snapshot
from recorder.session_start import collector_name, new_session_id, session_start
from shared.config import DEFAULT_QUALITY, dataset_dir, default_data_dir, default_endpoint
from shared.errors import UsageError, WriterUnavailable
from shared.protocol import CONTINUED, NO_SEED

_SEED_LIMIT = 2**63  # seeds are int64 in the dataset


@dataclass(frozen=True, kw_only=True)
class RecordOptions:
    """How `record` records (see its docstring)."""

    data_dir: Path
    endpoint: str
    data_dir_given: bool = True  # False: the default folder (a running writer's is fine)
    agent: str = "python"
    agent_sha256: str = ""
    codec: str = "jpeg"
    quality: int = DEFAULT_QUALITY
    fps: float | None = None
    max_steps: int | None = None
    realtime: bool = False
    seed_resets: bool = True
    buffer_bytes: int = 256 * 1024 * 1024
    stall_timeout: float = 30.0
    drain_timeout: float = 60.0
    record: tuple[str, ...] = ()  # extra observations with each frame ("ram", ...)


@dataclass
class RecordingStats:
    """What a recording wrapper has done so far (all sub-envs together)."""

    sessions: list[str]
    episodes: int = 0
    steps: int = 0
    steps_durable: int = 0
    steps_dropped: int = 0
    unconfirmed: int = 0
    dataset: Path | None = None


def record(env: Any, *, data_dir: str | Path | None = None, endpoint: str | None = None,
           agent: str = "python", agent_file: str | Path | None = None, codec: str = "jpeg",
           quality: int = DEFAULT_QUALITY, fps: float | None = None,
           max_steps: int | None = None, realtime: bool = False, seed_resets: bool = True,
           buffer_mb: int = 256, stall_timeout: float = 30.0,
           drain_timeout: float = 60.0,
           record: tuple[str, ...] = ()) -> RecordingEnv | RecordingVectorEnv:
    """Wrap `env` (a gymnasium Env or VectorEnv of Atari, Stable-Retro or VizDoom) so that
    every step it takes is recorded into `data_dir` (default as for gymrec-record).

    agent: a label stored as the player ("agent:<label>"); agent_file: the policy's file, whose
    sha256 is stored beside it. realtime: never wait for the writer (a full buffer becomes a
    counted gap) instead of waiting for room. seed_resets: draw a seed for resets without one.
    max_steps: cut episodes (recorded as truncated). fps: the rate stored (default the env's).
    record: extra observations stored with each frame, as `gymrec-record --record` (("ram",);
    a VizDoom env must be made with the buffers enabled: depth_buffer_enabled=True, ...);
    single envs only."""
    import hashlib

    digest = hashlib.sha256(Path(agent_file).read_bytes()).hexdigest() if agent_file else ""
    options = RecordOptions(
        data_dir=Path(data_dir or default_data_dir()).expanduser().resolve(),
        endpoint=endpoint or default_endpoint(), data_dir_given=data_dir is not None,
        agent=agent, agent_sha256=digest, codec=codec, quality=quality, fps=fps,
        max_steps=max_steps, realtime=realtime,
        seed_resets=seed_resets, buffer_bytes=buffer_mb * 1024 * 1024,
        stall_timeout=stall_timeout, drain_timeout=drain_timeout, record=tuple(record))
    if isinstance(env, gym.vector.VectorEnv):
        if record:
            raise UsageError("record= is for a single env, not a vector env")
        return RecordingVectorEnv(env, options)
    if isinstance(env, gym.Env):
        return RecordingEnv(env, options)
    raise UsageError(f"record() takes a gymnasium Env or VectorEnv, not {type(env).__name__}")


class _Writer:
    """The writer this wrapper records into: found or started, kept alive while open."""

    def __init__(self, options: RecordOptions, notify: Callable[[str], None]):
        self.stack = ExitStack()
        self.handle = ensure_writer(options.endpoint, options.data_dir,
                                    options.data_dir / ".writer.log")
        if options.data_dir_given:
            self.handle.check_folder(options.data_dir)
        self.stack.enter_context(self.handle.kept_alive(notify))

    @property
    def data_dir(self) -> Path:
        return self.handle.data_dir

    def close(self) -> None:
        self.stack.close()  # an auto-started writer exits by itself once idle


class _Session:
    """One (sub-)env's episodes as one recorded session."""

    def __init__(self, link: WriterLink, options: RecordOptions,
                 picture: Callable[[Any], np.ndarray], env: Any,
                 typed_info: Callable[[Mapping], dict]):
        self.link, self.options, self.picture, self.env = link, options, picture, env
        self.typed_info = typed_info
        self.episode: Episode | None = None
        self.next_index = 0
        self.episodes = self.steps = 0
        self.unrecorded = 0  # steps taken after an episode's end without a reset

    def begin(self, observation: Any, seed: int, info: Mapping | None = None,
              start_state: bytes | None = None) -> None:
        """A new episode starts at `observation` (reset with `seed`; NO_SEED: unknown; `info`:
        what the reset returned with it; `start_state`: the snapshot it started from)."""
        self.end("aborted")  # one still running was left by a reset: it ends here
        self.episode = Episode(sink=self.link, env=self.env, index=self.next_index, seed=seed,
                               start_state=start_state,
                               observation=observation, action_space=self.link.action_space,
                               max_steps=self.options.max_steps, picture=self.picture,
                               info=info, typed_info=self.typed_info,
                               record=self.options.record)
        self.next_index += 1

    def step(self, action: Any, result: tuple) -> None:
        """Record `action` and what it returned; the episode's end is sent when it ends."""
        episode = self.episode
        if episode is None:
            self.unrecorded += 1
            return
        if not self.options.realtime:
            self.link.wait_for_room(episode.frame.nbytes + episode.extras_bytes,
                                    self.options.stall_timeout)
        episode.record(action, result)
        self.steps += 1
        if episode.over:
            self.end()
        self.link.pump()
        if self.link.refused:
            raise WriterUnavailable(self.link.refused)

    def end(self, outcome: str | None = None) -> None:
        if self.episode is not None:
            self.episode.end(outcome)
            self.episodes += 1
            self.episode = None

    def finish(self) -> None:
        """End the episode in progress (aborted) and the session; wait until it is durable."""
        self.end("aborted")
        self.link.send_session_end("completed")
        self.link.drain(self.options.drain_timeout)


class _Recording:
    """What the two wrappers share: the writer, the sessions, seeds, stats and close()."""

    def __init__(self, options: RecordOptions):
        self.options = options
        self.writer: _Writer | None = None
        self.sessions: list[_Session] = []
        self.base_seed = fresh_base_seed()
        self.resets = 0
        self.closed = False
        self.env_id = ""

    def open_sessions(self, choice, env: Any, observations: list[Any],
                      picture: Callable[[Any], np.ndarray], sub_envs: list[Any]) -> None:
        """Start one session per observation (sub-env), all alike but for their pixels."""
        self.writer = _Writer(self.options, _notify)
        self.env_id = choice.env_id
        # A script that ends (or dies of an exception) without close(): drain at exit anyway.
        atexit.register(_close_at_exit, weakref.ref(self))
        fps = self.options.fps or native_fps(env)
        share = self.options.buffer_bytes // len(observations)
        for observation, sub_env in zip(observations, sub_envs, strict=True):
            frame = picture(observation)
            start = session_start(
                new_session_id(), choice, env, observation, fps=fps, codec=self.options.codec,
                quality=self.options.quality, base_seed=self.base_seed,
                collector=collector_name(), max_steps=self.options.max_steps,
                shm_slots=ring_slots(self.options.endpoint, share, frame.nbytes),
                player=f"agent:{self.options.agent}", agent_sha256=self.options.agent_sha256)
            link = WriterLink(self.options.endpoint, start, share,
                              batch_steps=1 if self.options.realtime else AGENT_BATCH_STEPS)
            # A vector env's sub-envs are elsewhere: their typed info comes from their infos.
            typed = info_reader(env, live=sub_env is env)
            self.sessions.append(_Session(link, self.options, picture, sub_env, typed))

    def drawn_seed(self) -> int:
        """A seed for a reset the user did not seed, reproducible from the base seed."""
        self.resets += 1
        return episode_seed(self.base_seed, self.resets)

    def stats(self) -> RecordingStats:
        found = RecordingStats(sessions=[s.link.session for s in self.sessions])
        for s in self.sessions:
            found.episodes += s.episodes
            found.steps += s.steps
            found.steps_durable += s.link.outbox.steps_durable
            found.steps_dropped += s.link.outbox.steps_dropped
            found.unconfirmed += s.link.outbox.unacked
        if self.writer is not None:
            found.dataset = dataset_dir(self.writer.data_dir, self.env_id)
        return found

    def close(self) -> None:
        """End every session and wait until the writer confirmed everything (twice: no-op).
        Raises WriterUnavailable when it did not."""
        if self.closed:
            return
        self.closed = True
        try:
            for session in self.sessions:
                session.finish()
            unconfirmed = self.stats().unconfirmed
        finally:
            for session in self.sessions:
                session.link.close()
            if self.writer is not None:
                self.writer.close()
        if unconfirmed:
            raise WriterUnavailable(f"the writer did not confirm {unconfirmed} messages of "
                                    "this recording (their frames are not on disk)")


class RecordingEnv(gym.Wrapper):
    """A gymnasium Env whose every step is recorded (made by `record`)."""

    def __init__(self, env: gym.Env, options: RecordOptions):
        super().__init__(env)
        self._recording = _Recording(options)
        # Refuses an env of no platform, or extras it cannot record, before playing.
        self._choice = recording(choice_of_env(env), options.record)

    @property
    def recording(self) -> RecordingStats:
        """Counts so far: episodes, steps, durable, dropped, and where the dataset is."""
        return self._recording.stats()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        recording = self._recording
        if recording.closed:
            raise UsageError("this recording env is closed")
        stored = _stored_seed(seed)
        # A reset the user left unseeded, after the first: on ALE, a snapshot instead of a
        # drawn seed (the user's own seeds and options are always respected).
        snapshot = (start_snapshot(self.env) if seed is None and options is None
                    and recording.sessions else None)
        if snapshot is not None:
            stored = CONTINUED  # the env goes on from the previous episode; the snapshot replays it
        elif seed is None and recording.options.seed_resets:
            seed = stored = recording.drawn_seed()
        elif seed is None and recording.sessions:
            stored = CONTINUED  # the env's RNG goes on from the previous episode
        if options is not None:
            stored = NO_SEED  # replay resets without the user's options
        observation, info = self.env.reset(seed=seed, options=options)
        if not recording.sessions:
            picture = _picture_of(self.env)
            recording.open_sessions(self._choice, self.env, [observation], picture, [self.env])
        recording.sessions[0].begin(observation, stored, info, start_state=snapshot)
        return observation, info

    def step(self, action: Any):
        result = self.env.step(action)
        if not self._recording.closed and self._recording.sessions:
            self._recording.sessions[0].step(action, result)
        return result

    def close(self) -> None:
        try:
            self._recording.close()
        finally:
            super().close()


class RecordingVectorEnv(gym.vector.VectorWrapper):
    """A gymnasium VectorEnv whose sub-envs' steps are recorded, one session each (made by
    `record`). Autoreset (NEXT_STEP, the default, and SAME_STEP) is followed: the step that
    resets a sub-env is no transition, and its new episode CONTINUES the previous one."""

    def __init__(self, env: gym.vector.VectorEnv, options: RecordOptions):
        super().__init__(env)
        self._recording = _Recording(options)
        self._mode = _autoreset_mode(env)
        self._pending = np.zeros(env.num_envs, dtype=bool)  # ended; next step resets it
        probe = _local_sub_env(env)
        self._choice = choice_of_env(probe)
        self._probe = probe

    @property
    def recording(self) -> RecordingStats:
        return self._recording.stats()

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict | None = None):
        recording, n = self._recording, self.env.num_envs
        if recording.closed:
            raise UsageError("this recording env is closed")
        if seed is None and recording.options.seed_resets:
            seed = recording.drawn_seed()
        seeds = ([None if seed is None else seed + i for i in range(n)] if not
                 isinstance(seed, (list, tuple)) else list(seed))
        observations, info = self.env.reset(seed=seed, options=options)
        mask = np.ones(n, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        if not recording.sessions:
            platform = platform_named(self._choice.platform)
            firsts = [_sub(observations, i) for i in range(n)]
            picture = (lambda obs: platform.frame(obs, _NO_RENDER))  # noqa: E731
            recording.open_sessions(self._choice, self._probe, firsts, picture,
                                    [_NO_RENDER] * n)
        extra = options is not None and set(options) - {"reset_mask"}
        for i in np.flatnonzero(mask):
            stored = _stored_seed(seeds[i])
            if seeds[i] is None and recording.sessions[i].next_index > 0:
                stored = CONTINUED
            stored = NO_SEED if extra else stored
            recording.sessions[i].begin(_sub(observations, i), stored, _sub_info(info, i))
            self._pending[i] = False
        return observations, info

    def step(self, actions: Any):
        observations, rewards, terminated, truncated, infos = self.env.step(actions)
        recording = self._recording
        if recording.closed or not recording.sessions:
            return observations, rewards, terminated, truncated, infos
        for i, session in enumerate(recording.sessions):
            observation = _sub(observations, i)
            if self._pending[i]:
                self._pending[i] = False
                if self._mode == "next_step":  # this step was sub-env i's reset
                    session.begin(observation, CONTINUED, _sub_info(infos, i))
                continue
            ended = bool(terminated[i] or truncated[i])
            reached, reached_info = observation, _sub_info(infos, i)
            if ended and self._mode == "same_step":
                reached = _sub(infos["final_obs"], i)
                reached_info = _sub_info(infos.get("final_info", {}), i)
            session.step(_sub(actions, i),
                         (reached, rewards[i], terminated[i], truncated[i], reached_info))
            if ended:
                if self._mode == "same_step":
                    session.begin(observation, CONTINUED, _sub_info(infos, i))
                else:
                    self._pending[i] = True
        return observations, rewards, terminated, truncated, infos

    def close(self, **kwargs: Any) -> None:
        try:
            self._recording.close()
        finally:
            if self._probe is not None and self._probe not in getattr(self.env, "envs", ()):
                self._probe.close()
            self._probe = None
            super().close(**kwargs)


class _NoRender:
    """The env a vector env's pictures are taken with: its sub-envs are elsewhere, so the
    picture must be in the observation."""

    unwrapped = None

    @staticmethod
    def render() -> None:
        raise UsageError("record() of a vector env needs observations that hold the picture "
                         "(obs_type 'rgb' for Atari)")


_NO_RENDER = _NoRender()


def _close_at_exit(ref: weakref.ref) -> None:
    recording = ref()
    if recording is not None and not recording.closed:
        try:
            recording.close()
        except Exception as exc:  # at exit: say it, nothing else can be done
            _notify(f"gymrec: {exc}")


def _stored_seed(seed: Any) -> int:
    """The seed as the dataset keeps it: an int64, else NO_SEED (not reproducible)."""
    if isinstance(seed, (int, np.integer)) and 0 <= int(seed) < _SEED_LIMIT:
        return int(seed)
    return NO_SEED


def _picture_of(env: Any) -> Callable[[Any], np.ndarray]:
    """frame_of for `env`, failing at once (one line) when its observations hold no picture
    and it does not render to arrays."""
    def picture(observation: Any) -> np.ndarray:
        return frame_of(observation, env)

    return picture


def _sub_info(infos: Mapping, i: int) -> dict:
    """Sub-env `i`'s info from a vector env's batched infos: each key whose `_key` mask is set
    for it (nested infos the same way)."""
    out = {}
    for key, values in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        if isinstance(values, Mapping):
            out[key] = _sub_info(values, i)
        elif hasattr(values, "__getitem__") and not isinstance(values, str):
            try:
                out[key] = values[i]
            except (IndexError, KeyError, TypeError):
                pass  # not one value per sub-env: not this sub-env's
    return out


def _sub(batch: Any, i: int) -> Any:
    """Sub-env `i`'s part of a vector env's batched value (arrays, dicts, tuples of them)."""
    if isinstance(batch, dict):
        return {k: _sub(v, i) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_sub(v, i) for v in batch)
    return batch[i]


def _autoreset_mode(env: gym.vector.VectorEnv) -> str:
    mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    name = getattr(mode, "name", str(mode)).lower()
    if name not in ("next_step", "same_step"):
        raise UsageError(f"record() follows the NEXT_STEP and SAME_STEP autoreset modes, not "
                         f"{name}")
    return name


def _local_sub_env(env: gym.vector.VectorEnv) -> Any:
    """A sub-env in this process (a SyncVectorEnv's first), else one made from the spec: what
    the session's description (spaces, action names, settings) is read from."""
    local = getattr(env, "envs", None)
    if local:
        return local[0]
    spec = env.get_attr("spec")[0]
    if spec is None:
        raise UsageError("cannot tell how this vector env's sub-envs were made (they have no "
                         "spec): make them with gymnasium.make")
    return gym.make(spec, render_mode="rgb_array")


def _notify(line: str) -> None:
    print(line, file=sys.stderr)
