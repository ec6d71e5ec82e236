"""Replay: play each recorded episode again and prove it reproduces bit-exactly.

Alignment (the dataset's, see shared/schema.py): row t holds frame t, the frame seen when action t
was chosen, and the reward / terminated / truncated that action t produced. The final row
(`is_last`, step T) holds the frame after the last action. So replay does

    frame 0 = reset(seed), or restore row 0's start_state then reset()
                                                   compared with row 0's image
    step t:  frame t+1, reward, flags = step(action t)
             reward, flags compared with row t; frame t+1 with row t+1's image

**"Diverges at step N"** means: step N (action N, 0-based) is the first step whose outcome differs
from the recording — its reward, terminated or truncated (row N), or the frame it led to (row
N+1's image). "Diverges at reset" means frame 0 (row 0) differs already. A changed action N thus
shows as a divergence at step N, first visible in row N (reward, flags) or row N+1 (the frame),
never earlier; its `frame` is the first row whose image differs.

Frames compare exactly, by hash: the replayed frame's xxh3-128 (`shared.frame_hash`) with the row's
`frame_hash`, which the writer took from the pixels it received ("frame" when they differ). With
`check_images`, and for rows written before gymrec stored hashes, the stored image too ("image";
"frame" for rows without a hash): for JPEG datasets the replayed frame is encoded with the
recorded settings (`shared.codec.encode_frame`, deterministic) and the bytes compared; for PNG the
recorded image is decoded and its raw pixels compared. `max_steps` cuts are the recorder's, so
replay applies them too (truncated on step max_steps-1). Aborted episodes are replayed over their
recorded steps, but their final frame is not compared: an interrupt can land after `env.step` and
before the step was sent, so that frame may follow an action that was never recorded.

An episode whose row 0 holds a `start_state` (an ALE episode after a session's first, started
without a seed: recorder/seeds.py) is restarted from it, so it replays alone, in any order; one
whose start state cannot be restored (damaged) fails with a note. Datasets without the column
(recorded before it) are reset with their seeds as before.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recorder.envs import EnvChoice, extras_reader, frame_of, info_reader, make_env
from recorder.envs.base import StartStateError
from recorder.replay.checks import (
    FrameChecks,
    FrameCompare,
    FrameTally,
    HashTally,
    extra_difference,
    recorded_extra,
)
from recorder.replay.sources.local import DatasetDamaged, DatasetSource
from recorder.seeds import restart_episode
from shared.errors import UsageError
from shared.protocol import CONTINUED

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
    extras: dict = field(default_factory=dict)  # name → dtype, shape (`--record`)

    @classmethod
    def from_start(cls, start: dict) -> RecordedEnv:
        return cls(env_id=start["env_id"], platform=start["platform"],
                   env_kwargs=dict(start["env_kwargs"]), codec=start["codec"],
                   quality=int(start["quality"]), frame_shape=tuple(start["frame_shape"]),
                   max_steps=int(start.get("max_steps") or 0), fps=float(start["fps"]),
                   versions=dict(start.get("versions", {})),
                   extras=dict(start.get("extras") or {}))

    @property
    def choice(self) -> EnvChoice:
        return EnvChoice(self.platform, self.env_id, dict(self.env_kwargs))

    @property
    def compare(self) -> FrameCompare:
        return FrameCompare(self.codec, self.quality, self.frame_shape)


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
        return self._by_id.get(episode_id)

    @cached_property
    def _by_id(self) -> dict[str, EpisodeInfo]:
        return {e.episode_id: e for e in self.episodes}

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
            return [dataclasses.replace(plan, wanted=frozenset([episode_id]))]
    known = sum(len(p.episodes) for p in plans)
    raise UsageError(f"episode {episode_id!r} is not in this dataset ({known} episodes in "
                     f"{len(plans)} sessions; ids look like <session>-00000)")


def check_env_id(session_files: list[dict], env_id: str, where: str) -> None:
    """UsageError when any session was recorded in another env than `env_id` (the resolved id:
    `Airstriker-Genesis` is recorded as `Airstriker-Genesis-v0`)."""
    others = sorted({s["start"]["env_id"] for s in session_files} - {env_id})
    if others:
        raise UsageError(f"{where} holds recordings of {', '.join(others)}, not {env_id}")


def version_warnings(recorded: dict, installed: dict) -> list[str]:
    """One line per tracked package whose installed version differs from the recording's."""
    return [f"{name} {recorded[name]} was recorded, {installed.get(name, 'missing')} is installed"
            for name in sorted(recorded) if recorded[name] != installed.get(name, "missing")]


# -- rows, batch by batch ---------------------------------------------------------------------


class Row(NamedTuple):
    """The columns replay reads (by these names, from shared.schema.COLUMNS)."""

    episode_id: str
    episode_index: int
    step: int
    seed: int
    image: bytes
    frame_hash: str | None  # None in datasets written before gymrec stored it
    info: dict | None  # the typed info with the frame (None: not recorded)
    action: Any
    reward: float | None
    terminated: bool
    truncated: bool
    is_last: bool
    start_state: bytes | None  # row 0 of an episode started from a snapshot; else None
    extras: dict | None = None  # the recorded extras (`--record`), name → stored value


def _column(batch: pa.RecordBatch, name: str) -> list:
    """A column of a batch as Python values; `image` as its encoded bytes; a column the batch
    lacks (shared.schema.ADDED_COLUMNS, in older datasets) as nulls."""
    if name not in batch.schema.names:
        return [None] * batch.num_rows
    if name == "image":
        return batch.column("image").field("bytes").to_pylist()
    return batch.column(name).to_pylist()


def _extras_column(batch: pa.RecordBatch, extras: dict) -> list:
    """Each row's extras (name → a sequence's uint8 array, an image's PNG bytes, or None)."""
    if not extras:
        return [None] * batch.num_rows
    columns = {}
    for name in extras:
        if name not in batch.schema.names:
            columns[name] = [None] * batch.num_rows
        elif pa.types.is_struct(batch.column(name).type):  # an Image: its bytes
            columns[name] = batch.column(name).field("bytes").to_pylist()
        else:
            column = batch.column(name)
            columns[name] = (column.to_pylist() if column.null_count else
                             list(column.flatten().to_numpy().reshape(len(column), -1)))
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(),
                                                                       strict=True)]


def rows_of(batches: Iterable[pa.RecordBatch], wanted: frozenset[str] | None = None,
            extras: dict | None = None) -> Iterator[Row]:
    """Rows in stored order, converted one batch at a time (memory: one batch); `extras`:
    the session's (SessionStart.extras), read into `Row.extras`."""
    for batch in batches:
        if wanted is not None:
            batch = batch.filter(pc.is_in(batch.column("episode_id"),
                                          pa.array(sorted(wanted), pa.string())))
            if batch.num_rows == 0:
                continue
        columns = [_extras_column(batch, extras or {}) if name == "extras"
                   else _column(batch, name) for name in Row._fields]
        yield from map(Row._make, zip(*columns, strict=True))


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


# -- replaying an episode ---------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    """Where a replay first disagrees with its recording (see the module docstring).

    `step`: the first step whose outcome differs, None when frame 0 (after reset) differs.
    `frame`: the first row whose frame differs (None when every compared frame matched).
    `fields`: what differs at `step`: "frame" (its hash, or its stored image in a dataset without
    hashes), "image" (the stored image, while the hash matched), "info.<name>" (a typed info
    column of the frame it led to), "reward", "terminated", "truncated".
    `detail`: the recorded and replayed values of the first differing info column.
    """

    step: int | None
    frame: int | None
    fields: tuple[str, ...]
    recorded: tuple = ()  # (reward, terminated, truncated) of row `step`, when those differ
    replayed: tuple = ()
    detail: str = ""

    @property
    def where(self) -> str:
        return "reset" if self.step is None else f"step {self.step}"


PASS, FAIL, ABORTED, GAP, DISCARDED, INTERRUPTED, UNSEEDED = (
    "pass", "fail", "aborted", "gap", "discarded", "interrupted", "unseeded")


@dataclass(frozen=True)
class EpisodeResult:
    episode_id: str
    session_id: str
    seed: int | None
    outcome: str  # how the recording ended: terminated, truncated, aborted, discarded, unfinished
    status: str  # pass, fail, aborted, gap, discarded, interrupted, unseeded
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
                   progress: Callable[[int], None] | None = None,
                   follows: bool = False, check_images: bool = False) -> EpisodeResult:
    """Reset with the episode's seed (or from its start state), step its recorded actions,
    compare every row (frames by hash; their stored images too with `check_images`). An
    episode that CONTINUED the previous one without a start state is reset without a seed when
    `follows` (the env has just replayed that previous episode to its end), else reported as
    not reproducible."""
    first = next(rows)
    info = plan.info(first.episode_id)
    outcome = info.outcome if info is not None else "unfinished"
    restart = first.step == 0 and first.start_state is not None
    continued = first.seed == CONTINUED and follows and not restart
    if not (continued or restart) and (first.seed is None or first.seed < 0):  # no start
        rest = 1 + sum(1 for _ in rows)
        if progress is not None:
            progress(rest)
        return EpisodeResult(
            episode_id=first.episode_id, session_id=plan.session_id, seed=None,
            outcome=outcome, status=UNSEEDED, steps=info.steps if info is not None else rest,
            steps_replayed=0, note=_unseeded_note(first.seed))
    try:
        observation, reset_info = restart_episode(env, None if continued else first.seed,
                                                  first.start_state if restart else None)
    except StartStateError as exc:
        rest = 1 + sum(1 for _ in rows)
        if progress is not None:
            progress(rest)
        return EpisodeResult(
            episode_id=first.episode_id, session_id=plan.session_id, seed=first.seed,
            outcome=outcome, status=FAIL, steps=info.steps if info is not None else rest,
            steps_replayed=0, divergence=Divergence(None, None, ("start_state",)),
            note=f"cannot start it again: {exc}")
    checks.start_episode(plan.recorded.compare)
    play = _Playback(observation, check_images=check_images, read_info=info_reader(env),
                     extras=plan.recorded.extras,
                     read_extras=extras_reader(env, tuple(plan.recorded.extras)))
    play.info = play.read_info(reset_info)
    _play(env, itertools.chain([first], rows), plan, checks, outcome, play, viewer, progress)
    rest = sum(1 for _ in rows)  # rows not replayed (after a stop); no env work
    if progress is not None:
        progress(play.rows % PROGRESS_EVERY + rest)
    tally = checks.finish_episode()
    hashes = play.hashes
    if not play.final_row and not play.stop and outcome in ("terminated", "truncated"):
        play.stop, play.note = "missing", "the final row is missing"
    if rest and play.stop == "ended":
        play.note += f"; {rest} recorded rows not replayed"
    if outcome == "aborted" and play.final_row:
        play.note = play.note or "aborted while recording; final frame not compared"
    divergence = _divergence(tally, hashes, play.flags, play.hashed, play.info_bad,
                             play.extras_bad)
    first_views = (hashes.first_bad_views if hashes.first_bad is not None
                   and (tally.first_bad is None or hashes.first_bad <= tally.first_bad)
                   else tally.first_bad_views)
    return EpisodeResult(
        episode_id=first.episode_id, session_id=plan.session_id,
        seed=None if continued else first.seed, outcome=outcome,
        status=_status(outcome, divergence, play.stop),
        steps=info.steps if info is not None else play.step + rest, steps_replayed=play.step,
        frames_compared=max(tally.compared, hashes.compared),
        frames_differing=max(tally.differing, hashes.differing),
        max_pixel_diff=max(tally.max_diff, hashes.max_diff), divergence=divergence,
        note=play.note, first_bad_views=first_views)


@dataclass
class _Playback:
    """How far the replay of one episode got (updated as it plays)."""

    observation: Any
    step: int = 0  # the step the next row must hold
    rows: int = 0
    final_row: bool = False
    stop: str = ""  # why it stopped before the final row: gap, missing, ended, error, ...
    note: str = ""
    flags: tuple | None = None  # first (step, fields, recorded, replayed) whose values differ
    check_images: bool = False  # compare stored images too (always for rows without a hash)
    hashes: HashTally = field(default_factory=HashTally)
    hashed: bool = False  # the rows carry frame hashes
    read_info: Callable[[Any], dict] = lambda info: {}  # noqa: E731 (the env's typed info)
    info: dict = field(default_factory=dict)  # the replayed typed info with `observation`
    info_bad: tuple | None = None  # first (row, column, recorded, replayed) that differs
    extras: dict = field(default_factory=dict)  # the session's extras: name → dtype, shape
    read_extras: Callable[[Any], dict] = lambda observation: {}  # noqa: E731
    extras_bad: tuple | None = None  # first (row, name, how it differs)

    def compare_info(self, row: Row) -> None:
        """The row's typed info against the replayed one (rows that recorded none: skipped)."""
        if self.info_bad is not None or not row.info or row.info == self.info:
            return
        for name, recorded in row.info.items():
            replayed = self.info.get(name)
            if recorded is not None and replayed != recorded:  # None: not recorded
                self.info_bad = (row.step, name, recorded, replayed)
                return

    def compare_extras(self, row: Row) -> None:
        """The row's extras (RAM, VizDoom's buffers) against the replayed observation's."""
        if self.extras_bad is not None or not row.extras:
            return
        replayed = self.read_extras(self.observation)
        for name, spec in self.extras.items():
            recorded = recorded_extra(row.extras.get(name), spec["shape"])
            if recorded is None or name not in replayed:
                continue
            difference = extra_difference(name, recorded, np.asarray(replayed[name]))
            if difference is not None:
                self.extras_bad = (row.step, name, difference)
                return

    def compare_frame(self, checks: FrameChecks, row: Row, frame: np.ndarray) -> None:
        """Row `row.step`'s frame against the replayed `frame`: by hash, and by stored image
        when asked or when the row has no hash."""
        if row.frame_hash is not None:
            self.hashed = True
            self.hashes.check(row.step, row.frame_hash, row.image, frame, checks.compare)
        if self.check_images or row.frame_hash is None:
            checks.submit(row.step, row.image, frame)


def _play(env: Any, rows: Iterable[Row], plan: SessionPlan, checks: FrameChecks, outcome: str,
          play: _Playback, viewer: Viewer | None, progress: Callable[[int], None] | None
          ) -> None:
    max_steps = plan.recorded.max_steps
    for row in rows:
        play.rows += 1
        if progress is not None and play.rows % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        step = play.step
        if row.step != step:
            gap = plan.in_gap(row.episode_index, step)
            play.stop = GAP if gap else "missing"
            play.note = (f"recorded gap from step {step}: replayed up to it" if gap else
                         f"rows missing from step {step} (no gap recorded)")
            return
        frame = frame_of(play.observation, env)
        play.compare_info(row)
        if not (row.is_last and outcome == "aborted"):  # as the frame: maybe after an unsent step
            play.compare_extras(row)
        if viewer is not None and not viewer.show(step, *checks.compare.views(row.image, frame)):
            play.stop, play.note = INTERRUPTED, f"window closed at step {step}"
            return
        if row.is_last:
            play.final_row = True
            if outcome != "aborted":
                play.compare_frame(checks, row, frame)
            return
        play.compare_frame(checks, row, frame)
        try:
            play.observation, reward, terminated, truncated, info = env.step(
                env_action(row.action, env.action_space))
            play.info = play.read_info(info)
        except Exception as exc:  # envs raise anything; the episode fails, the replay goes on
            play.stop, play.note = "error", f"the env raised at step {step}: {exc!r}"
            return
        if max_steps and step + 1 >= max_steps:
            truncated = True  # the recorder's own cut, not a divergence
        replayed = (float(reward), bool(terminated), bool(truncated))
        recorded = (row.reward, row.terminated, row.truncated)
        if play.flags is None and replayed != recorded:
            names = tuple(n for n, a, b in zip(("reward", "terminated", "truncated"), recorded,
                                               replayed, strict=True) if a != b)
            play.flags = (step, names, recorded, replayed)
        play.step += 1
        if (terminated or truncated) and not (row.terminated or row.truncated):
            play.stop, play.note = "ended", f"the replayed episode ended at step {step}"
            return


def _divergence(images: FrameTally, hashes: HashTally, flags, hashed: bool = True,
                info_bad: tuple | None = None,
                extras_bad: tuple | None = None) -> Divergence | None:
    """The first step whose outcome differs. A frame's hash differing is "frame"; its stored
    image differing is "image", or "frame" where no hash was stored (`hashed` False); a typed
    info column of the frame differing (`info_bad`: row, name, recorded, replayed) is
    "info.<name>"; an extra of the frame differing (`extras_bad`: row, name, how) is its name
    ("ram", "depth"), the info first when both differ at the same row."""
    bad_frames = {}  # field → first row whose frame differs by that check
    if hashes.first_bad is not None:
        bad_frames["frame"] = hashes.first_bad
    if images.first_bad is not None:
        bad_frames["image" if hashed else "frame"] = images.first_bad
    first_frame = min(bad_frames.values(), default=None)
    frame_step = None if first_frame is None else first_frame - 1  # -1: the reset
    frame_fields = tuple(name for name in ("frame", "image")
                         if bad_frames.get(name, -2) == first_frame)
    info_step = detail = None
    values = []  # (row, field, how) of the first differing info column, and extra
    if info_bad is not None:
        values.append((info_bad[0], f"info.{info_bad[1]}",
                       f"info {info_bad[1]}: recorded {info_bad[2]!r}, replayed {info_bad[3]!r}"))
    if extras_bad is not None:
        values.append(extras_bad)
    if values:
        row = min(v[0] for v in values)
        first_values = [v for v in values if v[0] == row]
        info_step = row - 1
        detail = ("; ".join(v[2] for v in first_values)
                  + ("" if bad_frames.get("frame") == row else ", frame still equal"))
    if flags is None and frame_step is None and info_step is None:
        return None
    steps = [s for s in (frame_step, info_step, flags[0] if flags else None) if s is not None]
    step = min(steps)
    fields: tuple[str, ...] = frame_fields if frame_step == step else ()
    if info_step == step:
        fields += tuple(v[1] for v in first_values)
    if step == -1:
        return Divergence(None, first_frame if frame_step == -1 else None, fields,
                          detail=(detail or "") if info_step == -1 else "")
    recorded = replayed = ()
    if flags is not None and flags[0] == step:
        fields += flags[1]
        recorded, replayed = flags[2], flags[3]
    return Divergence(step, first_frame, fields, recorded, replayed,
                      detail=(detail or "") if info_step == step else "")


def _status(outcome: str, divergence: Divergence | None, stop: str) -> str:
    if divergence is not None or stop in ("missing", "ended", "error"):
        return FAIL
    if stop in (INTERRUPTED, GAP):
        return stop
    if outcome in ("aborted", "unfinished"):
        return ABORTED
    return PASS


# -- replaying sessions -----------------------------------------------------------------------


def _played_to_end(result: EpisodeResult) -> bool:
    return result.status in (PASS, ABORTED) and result.steps_replayed == result.steps


def _unseeded_note(seed: int | None) -> str:
    if seed == CONTINUED:
        return ("not reproducible here: it continues the session's previous episode (an "
                "autoreset), which was not replayed to its end just before it")
    return ("not reproducible: its reset was not seeded (an unseeded reset kept as such, or "
            "reset options)")


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
                   progress: Callable[[int], None] | None = None,
                   check_images: bool = False) -> Iterator[EpisodeResult]:
    """Replay the session's episodes in stored order, then list the ones it could not find.
    Frames are compared by hash, and by stored image too with `check_images`."""
    env = envs.get(plan.recorded.choice)
    batches = (b for shard in source.shards(plan.session_id) for b in source.batches(shard))
    found: set[str] = set()
    whole = -1  # the episode index the env last replayed to its end (for CONTINUED ones)
    for episode_id, rows in episodes_of(rows_of(batches, plan.wanted, plan.recorded.extras)):
        found.add(episode_id)
        info = plan.info(episode_id)
        index = info.index if info is not None else -2
        result = replay_episode(env, rows, plan, checks, viewer, progress,
                                follows=index >= 0 and whole == index - 1,
                                check_images=check_images)
        whole = index if _played_to_end(result) else -1
        yield result
        if result.status == INTERRUPTED:
            return
    yield from discarded_results(plan)
    note = "listed in the session file, no rows in data/"
    damaged = source.damaged_shards(plan.session_id)
    if damaged:
        note += (f"; damaged shard{'s' if len(damaged) > 1 else ''} of this session: "
                 f"{', '.join(damaged)} (check with `gymrec-writer verify`)")
    for info in plan.episodes:
        if info.outcome == DISCARDED or info.episode_id in found or (
                plan.wanted is not None and info.episode_id not in plan.wanted):
            continue
        yield EpisodeResult(info.episode_id, plan.session_id, info.seed, info.outcome, FAIL,
                            info.steps, 0, note=note)
