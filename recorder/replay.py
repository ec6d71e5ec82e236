"""Replay: play each recorded episode again and prove it reproduces bit-exactly.

Alignment (the dataset's, see shared/schema.py): row t holds frame t, the frame seen when action t
was chosen, and the reward / terminated / truncated that action t produced. The final row
(`is_last`, step T) holds the frame after the last action. So replay does

    frame 0 = reset(seed)                          compared with row 0's image
    step t:  frame t+1, reward, flags = step(action t)
             reward, flags compared with row t; frame t+1 with row t+1's image

**"Diverges at step N"** means: step N (action N, 0-based) is the first step whose outcome differs
from the recording — its reward, terminated or truncated (row N), or the frame it led to (row
N+1's image). "Diverges at reset" means frame 0 (row 0) differs already. A changed action N thus
shows as a divergence at step N, first visible in row N (reward, flags) or row N+1 (the frame),
never earlier; its `frame` is the first row whose image differs.

Frames compare exactly: for JPEG datasets the replayed frame is encoded with the recorded settings
(`shared.codec.encode_frame`, deterministic) and the bytes compared; for PNG the recorded image is
decoded and its raw pixels compared. `max_steps` cuts are the recorder's, so replay applies them too
(truncated on step max_steps-1). Aborted episodes are replayed over their recorded steps, but their
final frame is not compared: an interrupt can land after `env.step` and before the step was sent, so
that frame may follow an action that was never recorded.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recorder.dataset_source import DatasetDamaged, DatasetSource
from recorder.envs import EnvChoice, frame_of, make_env
from recorder.replay_images import pixel_difference
from shared.codec import JPEG_SUBSAMPLING, decode_frame, encode_frame
from shared.errors import UsageError

CHECK_CHUNK = 32  # frames per job for the comparison thread (fewer hand-offs, less GIL traffic)
MAX_CHUNKS_IN_FLIGHT = 4  # bounds memory: at most ~160 frames wait for comparison
PROGRESS_EVERY = 64  # rows between progress callbacks


# -- what was recorded ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedEnv:
    """How a session's env was made and its frames stored (from its start message)."""

    env_id: str
    platform: str
    env_kwargs: dict
    codec: str
    quality: int
    frame_shape: tuple[int, int, int]
    max_steps: int  # 0: the recorder never cut an episode
    fps: float
    versions: dict

    @classmethod
    def from_start(cls, start: dict) -> RecordedEnv:
        return cls(env_id=start["env_id"], platform=start["platform"],
                   env_kwargs=dict(start["env_kwargs"]), codec=start["codec"],
                   quality=int(start["quality"]), frame_shape=tuple(start["frame_shape"]),
                   max_steps=int(start.get("max_steps") or 0), fps=float(start["fps"]),
                   versions=dict(start.get("versions", {})))

    @property
    def choice(self) -> EnvChoice:
        return EnvChoice(self.platform, self.env_id, dict(self.env_kwargs))


@dataclass(frozen=True)
class EpisodeInfo:
    """An episode as its session file lists it."""

    episode_id: str
    index: int
    seed: int
    steps: int
    outcome: str  # terminated, truncated, aborted, discarded


@dataclass(frozen=True)
class SessionPlan:
    """What to replay of one session: `wanted` None means every episode in its shards."""

    session_id: str
    recorded: RecordedEnv
    status: str
    episodes: tuple[EpisodeInfo, ...]
    gaps: tuple[tuple[int, int, int], ...]  # (episode index, first step, last step) missing
    wanted: frozenset[str] | None = None

    @classmethod
    def from_session_file(cls, state: dict) -> SessionPlan:
        episodes = tuple(
            EpisodeInfo(e["episode_id"], int(e["episode_index"]), int(e["seed"]), int(e["steps"]),
                        e["outcome"]) for e in state.get("episodes", []))
        gaps = tuple((int(g["episode"]), int(g["first_step"]), int(g["last_step"]))
                     for g in state.get("gaps", []))
        return cls(state["start"]["session"], RecordedEnv.from_start(state["start"]),
                   state.get("status", "unknown"), episodes, gaps)

    def info(self, episode_id: str) -> EpisodeInfo | None:
        return next((e for e in self.episodes if e.episode_id == episode_id), None)

    def in_gap(self, episode_index: int, step: int) -> bool:
        return any(e == episode_index and first <= step <= last for e, first, last in self.gaps)


def plan_sessions(session_files: list[dict], episode_id: str | None = None) -> list[SessionPlan]:
    """The sessions to replay; with `episode_id`, only the session holding it, narrowed to it.
    Raises UsageError naming the id when no session lists it (nor has it in its name)."""
    plans = [SessionPlan.from_session_file(s) for s in session_files]
    if episode_id is None:
        return plans
    for plan in plans:
        # An unfinished session's last episode is in its shards but not yet in its file.
        if plan.info(episode_id) is not None or (
                plan.status != "ended" and episode_id.startswith(plan.session_id + "-")):
            return [SessionPlan(plan.session_id, plan.recorded, plan.status, plan.episodes,
                                plan.gaps, frozenset([episode_id]))]
    known = sum(len(p.episodes) for p in plans)
    raise UsageError(f"episode {episode_id!r} is not in this dataset ({known} episodes in "
                     f"{len(plans)} sessions; ids look like <session>-00000)")


def version_warnings(recorded: dict, installed: dict) -> list[str]:
    """One line per tracked package whose installed version differs from the recording's."""
    return [f"{name} {recorded[name]} was recorded, {installed.get(name, 'missing')} is installed"
            for name in sorted(recorded) if recorded[name] != installed.get(name, "missing")]


# -- rows, batch by batch ---------------------------------------------------------------------


class Row(NamedTuple):
    episode_id: str
    episode_index: int
    step: int
    seed: int
    image: bytes
    action: Any
    reward: float | None
    terminated: bool
    truncated: bool
    is_last: bool


_SCALARS = ("episode_id", "episode_index", "step", "seed")
_OUTCOME = ("action", "reward", "terminated", "truncated", "is_last")


def rows_of(batches: Iterable[pa.RecordBatch], wanted: frozenset[str] | None = None
            ) -> Iterator[Row]:
    """Rows in stored order, converted one batch at a time (memory: one batch)."""
    for batch in batches:
        if wanted is not None:
            batch = batch.filter(pc.is_in(batch.column("episode_id"),
                                          pa.array(sorted(wanted), pa.string())))
            if batch.num_rows == 0:
                continue
        columns = [batch.column(name).to_pylist() for name in _SCALARS]
        images = batch.column("image").field("bytes").to_pylist()
        outcome = [batch.column(name).to_pylist() for name in _OUTCOME]
        yield from map(Row._make, zip(*columns, images, *outcome, strict=True))


def episodes_of(rows: Iterator[Row]) -> Iterator[tuple[str, Iterator[Row]]]:
    """Group rows into episodes (lazily). Raises DatasetDamaged when an episode's rows are not
    contiguous, which the writer guarantees they are within a session."""
    seen: set[str] = set()
    for episode_id, group in itertools.groupby(rows, key=lambda r: r.episode_id):
        if episode_id in seen:
            raise DatasetDamaged(f"rows of episode {episode_id} are not contiguous")
        seen.add(episode_id)
        yield episode_id, group


def env_action(value: Any, space: Any) -> Any:
    """A stored action (int, list, dict) as the env takes it, in the space's own dtype."""
    kind = type(space).__name__
    if kind == "Discrete":
        return int(value)
    if kind == "Dict":
        return {k: env_action(value[k], sub) for k, sub in space.spaces.items()}
    return np.asarray(value, dtype=space.dtype).reshape(space.shape)


# -- comparing frames -------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameCompare:
    """Exact comparison of replayed frames with stored image bytes, for one codec."""

    codec: str
    quality: int
    shape: tuple[int, int, int]

    @property
    def method(self) -> str:
        if self.codec == "jpeg":
            return (f"JPEG bytes: replayed frames re-encoded like the writer (quality "
                    f"{self.quality}, {JPEG_SUBSAMPLING[0]}:{JPEG_SUBSAMPLING[1]}:"
                    f"{JPEG_SUBSAMPLING[2]}) and compared byte for byte")
        return "raw pixels: recorded PNGs decoded (lossless) and compared pixel for pixel"

    def same(self, recorded: bytes, frame: np.ndarray) -> bool:
        if frame.shape != self.shape:
            return False
        if self.codec == "jpeg":
            return encode_frame(frame, list(self.shape), "jpeg", self.quality) == recorded
        return np.array_equal(decode_frame(recorded, self.codec, self.shape[2]), frame)

    def views(self, recorded: bytes, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(recorded pixels, replayed pixels) as the codec sees them: for JPEG the replayed frame
        goes through the same encoder, so equal frames show no difference at all."""
        stored = decode_frame(recorded, self.codec, self.shape[2])
        if self.codec == "jpeg" and frame.shape == self.shape:
            frame = decode_frame(encode_frame(frame, list(self.shape), "jpeg", self.quality),
                                 "jpeg", self.shape[2])
        return stored, frame


@dataclass
class FrameTally:
    """What the comparison of an episode's frames found."""

    compared: int = 0
    differing: int = 0
    first_bad: int | None = None  # row (= frame index) of the first differing frame
    max_diff: int = 0
    first_bad_views: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, index: int, same: bool, views: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.compared += 1
        if same:
            return
        self.differing += 1
        if views is not None:
            self.max_diff = max(self.max_diff, pixel_difference(*views))
        if self.first_bad is None or index < self.first_bad:
            self.first_bad, self.first_bad_views = index, views


def _check_chunk(compare: FrameCompare, chunk: list[tuple[int, bytes, np.ndarray]]
                 ) -> list[tuple[int, bool, tuple[np.ndarray, np.ndarray] | None]]:
    out = []
    for index, recorded, frame in chunk:
        same = compare.same(recorded, frame)
        out.append((index, same, None if same else compare.views(recorded, frame)))
    return out


class FrameChecks:
    """Compares frames as the replay produces them: inline, or in chunks on a worker thread so the
    env keeps stepping while JPEG encodes (simplejpeg releases the GIL). In-flight frames are
    bounded by CHECK_CHUNK × MAX_CHUNKS_IN_FLIGHT. `close()` stops the thread."""

    def __init__(self, compare: FrameCompare, threaded: bool):
        self.compare = compare
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="replay-check") if threaded else None
        self._chunk: list[tuple[int, bytes, np.ndarray]] = []
        self._in_flight: deque[Future] = deque()
        self.tally = FrameTally()

    def start_episode(self) -> None:
        self.tally = FrameTally()

    def submit(self, index: int, recorded: bytes, frame: np.ndarray) -> None:
        if self._pool is None:
            self._fold(_check_chunk(self.compare, [(index, recorded, frame)]))
            return
        self._chunk.append((index, recorded, frame.copy()))  # the env may reuse its buffer
        if len(self._chunk) >= CHECK_CHUNK:
            self._send()
            while len(self._in_flight) > MAX_CHUNKS_IN_FLIGHT:
                self._fold(self._in_flight.popleft().result())

    def finish_episode(self) -> FrameTally:
        if self._pool is not None:
            self._send()
            while self._in_flight:
                self._fold(self._in_flight.popleft().result())
        return self.tally

    def close(self) -> None:
        if self._pool is not None:
            for future in self._in_flight:
                future.cancel()
            self._pool.shutdown(wait=True)

    def _send(self) -> None:
        if self._chunk:
            self._in_flight.append(self._pool.submit(_check_chunk, self.compare, self._chunk))
            self._chunk = []

    def _fold(self, results) -> None:
        for index, same, views in results:
            self.tally.add(index, same, views)


# -- replaying an episode ---------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    """Where a replay first disagrees with its recording (see the module docstring).

    `step`: the first step whose outcome differs, None when frame 0 (after reset) differs.
    `frame`: the first row whose image differs (None when every compared frame matched).
    `fields`: what differs at `step`: "frame", "reward", "terminated", "truncated".
    """

    step: int | None
    frame: int | None
    fields: tuple[str, ...]
    recorded: tuple = ()  # (reward, terminated, truncated) of row `step`, when those differ
    replayed: tuple = ()

    @property
    def where(self) -> str:
        return "reset" if self.step is None else f"step {self.step}"


PASS, FAIL, ABORTED, GAP, DISCARDED, INTERRUPTED = (
    "pass", "fail", "aborted", "gap", "discarded", "interrupted")


@dataclass(frozen=True)
class EpisodeResult:
    episode_id: str
    session_id: str
    seed: int | None
    outcome: str  # how the recording ended: terminated, truncated, aborted, discarded, unfinished
    status: str  # pass, fail, aborted, gap, discarded, interrupted
    steps: int  # actions recorded
    steps_replayed: int
    frames_compared: int = 0
    frames_differing: int = 0
    max_pixel_diff: int = 0
    divergence: Divergence | None = None
    note: str = ""
    first_bad_views: tuple[np.ndarray, np.ndarray] | None = field(
        default=None, compare=False, repr=False)

    @property
    def failed(self) -> bool:
        return self.status == FAIL


class Viewer(Protocol):
    def show(self, step: int, recorded: np.ndarray, replayed: np.ndarray) -> bool:
        """Show one frame pair; False when the person closed the window."""
        ...


def replay_episode(env: Any, rows: Iterator[Row], plan: SessionPlan, checks: FrameChecks,
                   viewer: Viewer | None = None,
                   progress: Callable[[int], None] | None = None) -> EpisodeResult:
    """Reset with the episode's seed, step its recorded actions, compare every row."""
    first = next(rows)
    info = plan.info(first.episode_id)
    outcome = info.outcome if info is not None else "unfinished"
    max_steps = plan.recorded.max_steps
    checks.start_episode()
    observation, _ = env.reset(seed=first.seed)
    step, counted, final_row = 0, 0, False
    stop = note = ""
    flags: tuple[int, tuple[str, ...], tuple, tuple] | None = None
    for row in itertools.chain([first], rows):
        counted += 1
        if progress is not None and counted % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        if row.step != step:
            stop = GAP if plan.in_gap(row.episode_index, step) else "missing"
            note = (f"recorded gap from step {step}: replayed up to it" if stop == GAP else
                    f"rows missing from step {step} (no gap recorded)")
            break
        frame = frame_of(observation, env)
        if viewer is not None and not viewer.show(step, *checks.compare.views(row.image, frame)):
            stop, note = INTERRUPTED, f"window closed at step {step}"
            break
        if row.is_last:
            final_row = True
            if outcome != "aborted":
                checks.submit(step, row.image, frame)
            break
        checks.submit(step, row.image, frame)
        observation, reward, terminated, truncated, _ = env.step(
            env_action(row.action, env.action_space))
        if max_steps and step + 1 >= max_steps:
            truncated = True  # the recorder's own cut, not a divergence
        replayed = (float(reward), bool(terminated), bool(truncated))
        recorded = (row.reward, row.terminated, row.truncated)
        if flags is None and replayed != recorded:
            names = tuple(n for n, a, b in zip(("reward", "terminated", "truncated"), recorded,
                                               replayed, strict=True) if a != b)
            flags = (step, names, recorded, replayed)
        step += 1
        if (terminated or truncated) and not (row.terminated or row.truncated):
            stop, note = "ended", f"the replayed episode ended at step {step - 1}"
            break
    rest = sum(1 for _ in rows)  # rows not replayed (after a stop); no env work
    if progress is not None:
        progress(counted % PROGRESS_EVERY + rest)
    tally = checks.finish_episode()
    divergence = _divergence(tally, flags)
    if not final_row and not stop and outcome in ("terminated", "truncated"):
        stop, note = "missing", "the final row is missing"
    if rest and stop == "ended":
        note += f"; {rest} recorded rows not replayed"
    if outcome == "aborted" and final_row:
        note = note or "aborted while recording; final frame not compared"
    status = _status(outcome, divergence, stop)
    steps = info.steps if info is not None else step + rest
    return EpisodeResult(
        episode_id=first.episode_id, session_id=plan.session_id, seed=first.seed,
        outcome=outcome, status=status, steps=steps, steps_replayed=step,
        frames_compared=tally.compared, frames_differing=tally.differing,
        max_pixel_diff=tally.max_diff, divergence=divergence, note=note,
        first_bad_views=tally.first_bad_views)


def _divergence(tally: FrameTally, flags) -> Divergence | None:
    frame_step = None if tally.first_bad is None else tally.first_bad - 1  # -1: the reset
    if flags is None and frame_step is None:
        return None
    if frame_step == -1:
        return Divergence(None, tally.first_bad, ("frame",))
    step = min(s for s in (frame_step, flags[0] if flags else None) if s is not None)
    fields: tuple[str, ...] = ("frame",) if frame_step == step else ()
    recorded = replayed = ()
    if flags is not None and flags[0] == step:
        fields += flags[1]
        recorded, replayed = flags[2], flags[3]
    return Divergence(step, tally.first_bad, fields, recorded, replayed)


def _status(outcome: str, divergence: Divergence | None, stop: str) -> str:
    if divergence is not None or stop in ("missing", "ended"):
        return FAIL
    if stop in (INTERRUPTED, GAP):
        return stop
    if outcome in ("aborted", "unfinished"):
        return ABORTED
    return PASS


# -- replaying sessions -----------------------------------------------------------------------


def discarded_results(plan: SessionPlan) -> list[EpisodeResult]:
    """Discarded episodes are not in the data; they are listed, not replayed."""
    return [EpisodeResult(e.episode_id, plan.session_id, e.seed, DISCARDED, DISCARDED, e.steps, 0)
            for e in plan.episodes if e.outcome == DISCARDED
            and (plan.wanted is None or e.episode_id in plan.wanted)]


class EnvCache:
    """One env at a time (Stable-Retro allows one emulator per process), reused while sessions
    ask for the same env and kwargs. `close()` may be called twice."""

    def __init__(self, make: Callable[[EnvChoice], Any] = make_env):
        self._make = make
        self._choice: EnvChoice | None = None
        self._env: Any = None

    def get(self, choice: EnvChoice) -> Any:
        if self._env is not None and choice == self._choice:
            return self._env
        self.close()
        self._env, self._choice = self._make(choice), choice
        return self._env

    def close(self) -> None:
        env, self._env, self._choice = self._env, None, None
        if env is not None:
            env.close()


def replay_session(plan: SessionPlan, source: DatasetSource, envs: EnvCache, checks: FrameChecks,
                   viewer: Viewer | None = None,
                   progress: Callable[[int], None] | None = None) -> Iterator[EpisodeResult]:
    """Replay the session's episodes in stored order, then list the ones it could not find."""
    env = envs.get(plan.recorded.choice)
    batches = (b for shard in source.shards(plan.session_id) for b in source.batches(shard))
    found: set[str] = set()
    for episode_id, rows in episodes_of(rows_of(batches, plan.wanted)):
        found.add(episode_id)
        result = replay_episode(env, rows, plan, checks, viewer, progress)
        yield result
        if result.status == INTERRUPTED:
            return
    yield from discarded_results(plan)
    for info in plan.episodes:
        if info.outcome == DISCARDED or info.episode_id in found or (
                plan.wanted is not None and info.episode_id not in plan.wanted):
            continue
        yield EpisodeResult(info.episode_id, plan.session_id, info.seed, info.outcome, FAIL,
                            info.steps, 0, note="listed in the session file, no rows in data/")
