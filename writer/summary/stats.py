"""Statistics of a dataset, as plain functions over values: episodes, frames, hours of play,
returns and lengths, outcomes, actions, gaps, sessions and who played.

`StatsBuilder` takes the dataset's rows one Arrow table at a time (any columns but `image`; a
shard, or a batch of one) and the sessions' files, so a long dataset is read in flat memory; the
result (`DatasetStats`) is what `gymrec-writer summary` prints and what the cards and
`.meta/info.json` show. No clock and no files here: the same rows give the same numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
# The columns the statistics read (never `image`).
STAT_COLUMNS = ("session_id", "episode_id", "step", "action", "reward", "terminated",
                "truncated", "is_last")


@dataclass
class _Episode:
    session_id: str
    steps: int = 0  # rows that hold an action
    ret: float = 0.0
    ended: bool = False  # its final row (is_last) is in the data
    terminated: bool = False
    truncated: bool = False


@dataclass(frozen=True, kw_only=True)
class Spread:
    """Mean, min, max and quantiles (QUANTILES) of some numbers; all None when there are none."""

    mean: float | None
    min: float | None
    max: float | None
    quantiles: dict[str, float] = field(default_factory=dict)  # "p50" → value

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            return cls(mean=None, min=None, max=None)
        array = np.asarray(values, dtype=np.float64)
        qs = np.quantile(array, QUANTILES)
        return cls(mean=float(array.mean()), min=float(array.min()), max=float(array.max()),
                   quantiles={f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, qs,
                                                                             strict=True)})


@dataclass(frozen=True, kw_only=True)
class DatasetStats:
    """What a dataset holds (episodes: those with rows in the data; discarded ones are only
    counted in `outcomes`, their rows are not in the dataset)."""

    sessions: int
    episodes: int
    frames: int  # rows that hold an action (steps)
    rows: int  # frames + one final-observation row per finished episode
    hours: float  # frames / fps, each at its session's rate (with human play's speed changes)
    returns: Spread
    lengths: Spread  # steps per episode
    outcomes: dict[str, int]  # terminated / truncated / aborted / discarded / incomplete
    actions: dict[str, int]  # action label (or index) → how often it was taken (pressed)
    action_kind: str  # Discrete: one action per step; MultiBinary: button presses; else ""
    gaps: int  # gap events
    dropped_frames: int  # steps lost in gaps
    collectors: dict[str, int]  # user@host → sessions
    players: dict[str, int]  # human / agent:<name> → sessions
    episode_returns: list[float]  # in dataset order, for pictures
    episode_lengths: list[int]

    def to_json(self, per_episode: bool = False) -> dict:
        """A JSON-able dict (without the per-episode lists unless `per_episode`)."""
        value = asdict(self)
        if not per_episode:
            del value["episode_returns"], value["episode_lengths"]
        return value


class StatsBuilder:
    """Accumulates rows (Arrow tables of STAT_COLUMNS) and sessions' files into DatasetStats."""

    def __init__(self) -> None:
        self._episodes: dict[str, _Episode] = {}
        self._actions: Counter = Counter()
        self._kind = ""

    def add_batches(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Count a shard's batches as one table (the writer flushes a batch every ~64 rows:
        counting each alone cost ~1.5 ms of grouping apiece, 0.15 s a card for 2 shards)."""
        batches = list(batches)
        if batches:
            self.add_rows(pa.Table.from_batches(batches))

    def add_rows(self, table: pa.Table | pa.RecordBatch) -> None:
        """Count the rows of `table` (a shard or a batch; episodes may continue across them).
        Vectorised: a shard of 10k rows takes milliseconds."""
        import pyarrow.compute as pc  # ~60 ms to import: not on the way to a writer's start

        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        last = pc.fill_null(table.column("is_last"), False)
        steps = table.filter(pc.invert(last))
        per_episode = steps.group_by(["episode_id", "session_id"]).aggregate(
            [("reward", "sum"), ("is_last", "count")]).to_pylist()
        for row in per_episode:
            episode = self._episode(row["episode_id"], row["session_id"])
            episode.steps += row["is_last_count"]
            episode.ret += float(row["reward_sum"] or 0.0)
        finals = table.filter(last).select(["episode_id", "session_id", "terminated",
                                            "truncated"])
        for row in finals.to_pylist():
            episode = self._episode(row["episode_id"], row["session_id"])
            episode.ended = True
            episode.terminated, episode.truncated = bool(row["terminated"]), bool(row["truncated"])
        self._count_actions(steps.column("action"))

    def _episode(self, episode_id: str, session_id: str) -> _Episode:
        if episode_id not in self._episodes:
            self._episodes[episode_id] = _Episode(session_id)
        return self._episodes[episode_id]

    def _count_actions(self, actions: pa.ChunkedArray) -> None:
        """Discrete: how often each action was taken; MultiBinary (lists of int8): how often
        each button was pressed. Other spaces are not counted."""
        import pyarrow.compute as pc

        kind = actions.type
        if pa.types.is_integer(kind):
            self._kind = "Discrete"
            for item in pc.value_counts(actions.drop_null()).to_pylist():
                self._actions[int(item["values"])] += item["counts"]
        elif (pa.types.is_fixed_size_list(kind) and pa.types.is_int8(kind.value_type)
              and len(actions)):
            self._kind = "MultiBinary"
            flat = pc.list_flatten(actions.drop_null()).to_numpy(zero_copy_only=False)
            presses = flat.reshape(-1, kind.list_size).astype(np.int64).sum(axis=0)
            for index, count in enumerate(presses):
                self._actions[index] += int(count)

    def build(self, sessions: list[dict]) -> DatasetStats:
        """The statistics of the rows added so far; `sessions` are the sessions' files
        (start message, episodes with the recorder's outcomes, gaps, discarded)."""
        episodes = dict(sorted(self._episodes.items()))  # dataset order, whatever was added first
        by_id = {s["start"]["session"]: s for s in sessions if isinstance(s.get("start"), dict)}
        hours = sum(_seconds(eid, e, by_id.get(e.session_id)) for eid, e in episodes.items())
        hours /= 3600
        outcomes = Counter(_outcome(eid, e, _recorded_outcomes(sessions))
                           for eid, e in episodes.items())
        outcomes["discarded"] += sum(1 for s in sessions for e in s.get("episodes", [])
                                     if e.get("outcome") == "discarded"
                                     and e["episode_id"] not in episodes)
        starts = [s["start"] for s in sessions if isinstance(s.get("start"), dict)]
        labels = (starts[0].get("action_labels") or []) if starts else []
        return _assemble(
            sessions, returns=[e.ret for e in episodes.values()],
            lengths=[e.steps for e in episodes.values()],
            rows=sum(e.steps + e.ended for e in episodes.values()), hours=hours,
            outcomes=outcomes,
            actions={_label(index, labels): n for index, n in sorted(self._actions.items())},
            action_kind=self._kind)


def merge(parts: list[dict], sessions: list[dict]) -> DatasetStats:
    """The statistics of several parts of a dataset as one: `parts` are
    `DatasetStats.to_json(per_episode=True)` values (e.g. one per session, from different
    machines), `sessions` the files of all their sessions (gaps, collectors, players)."""
    outcomes: Counter = Counter()
    actions: dict[str, int] = {}
    for part in parts:
        outcomes.update(part["outcomes"])
        for label, n in part["actions"].items():
            actions[label] = actions.get(label, 0) + n
    return _assemble(
        sessions, returns=[float(r) for p in parts for r in p["episode_returns"]],
        lengths=[int(n) for p in parts for n in p["episode_lengths"]],
        rows=sum(int(p["rows"]) for p in parts), hours=sum(float(p["hours"]) for p in parts),
        outcomes=outcomes, actions=actions,
        action_kind=next((p["action_kind"] for p in parts if p["action_kind"]), ""))


def _assemble(sessions: list[dict], *, returns: list[float], lengths: list[int], rows: int,
              hours: float, outcomes: Counter, actions: dict[str, int],
              action_kind: str) -> DatasetStats:
    starts = [s["start"] for s in sessions if isinstance(s.get("start"), dict)]
    gaps = [g for s in sessions for g in s.get("gaps", []) if isinstance(g, dict)]
    return DatasetStats(
        sessions=len(sessions), episodes=len(returns), frames=sum(lengths), rows=rows,
        hours=hours, returns=Spread.of(returns), lengths=Spread.of([float(n) for n in lengths]),
        outcomes={k: v for k, v in sorted(outcomes.items()) if v}, actions=actions,
        action_kind=action_kind, gaps=len(gaps),
        dropped_frames=sum(int(g.get("count", 0)) for g in gaps),
        collectors=dict(sorted(Counter(str(s.get("collector", "?")) for s in starts).items())),
        players=dict(sorted(Counter(str(s.get("player") or "not recorded")
                                    for s in starts).items())),
        episode_returns=returns, episode_lengths=lengths,
    )


def play_seconds(steps: int, episode: int, fps: float, changes: list) -> float:
    """Seconds of play of `steps` frames of `episode` at `fps`, the rate changing as
    `changes` say ([episode, step, fps] each, in order: the speed keys of human play)."""
    rate, points = fps, []
    for change in changes:
        e, s, f = int(change[0]), int(change[1]), float(change[2])
        if (e, s) <= (episode, 0):
            rate = f
        elif e == episode and s < steps:
            points.append((s, f))
    total, at = 0.0, 0
    for step, new_rate in points:
        total += (step - at) / rate
        at, rate = step, new_rate
    return total + (steps - at) / rate


def _seconds(episode_id: str, episode: _Episode, session: dict | None) -> float:
    """An episode's seconds of play at its session's true rate (0 when that is unknown)."""
    fps = float((session or {}).get("start", {}).get("fps") or 0)
    if fps <= 0:
        return 0.0
    end = session.get("end") if isinstance(session.get("end"), dict) else {}
    changes = [c for c in end.get("fps_changes") or [] if isinstance(c, list) and len(c) == 3
               and float(c[2]) > 0]
    index = episode_id.rsplit("-", 1)[-1]
    return play_seconds(episode.steps, int(index) if index.isdigit() else 0, fps, changes)


def _recorded_outcomes(sessions: list[dict]) -> dict[str, str]:
    return {e["episode_id"]: e["outcome"] for s in sessions for e in s.get("episodes", [])
            if isinstance(e, dict) and "episode_id" in e and "outcome" in e}


def _outcome(episode_id: str, episode: _Episode, recorded: dict[str, str]) -> str:
    """How an episode ended: the recorder's word for it when the data has its end, else
    "incomplete" (a gap or a crash cut it)."""
    if not episode.ended:
        return "incomplete"
    if episode_id in recorded:
        return recorded[episode_id]
    return ("terminated" if episode.terminated else "truncated" if episode.truncated
            else "aborted")


def _label(index: int, labels: list[str]) -> str:
    return labels[index] if 0 <= index < len(labels) and labels[index] else str(index)


def stats_lines(stats: DatasetStats) -> list[str]:
    """The statistics as a few lines of plain text (for a terminal and for cards)."""
    lines = [
        f"sessions {stats.sessions}, episodes {stats.episodes}, frames {stats.frames:,}, "
        f"rows {stats.rows:,}, hours of play {stats.hours:.3f}",
        "return  " + _spread_text(stats.returns),
        "length  " + _spread_text(stats.lengths, digits=0),
        "outcomes: " + (", ".join(f"{k} {v}" for k, v in stats.outcomes.items()) or "none"),
    ]
    if stats.actions:
        total = sum(stats.actions.values()) or 1
        what = "button presses" if stats.action_kind == "MultiBinary" else "actions"
        lines.append(f"{what}: " + ", ".join(f"{k} {v} ({100 * v / total:.0f}%)"
                                             for k, v in stats.actions.items()))
    lines.append(f"gaps: {stats.gaps} ({stats.dropped_frames} frames dropped)")
    lines.append("collectors: " + ", ".join(f"{k} ({v})" for k, v in stats.collectors.items()))
    lines.append("players: " + ", ".join(f"{k} ({v})" for k, v in stats.players.items()))
    return lines


def _spread_text(spread: Spread, digits: int = 2) -> str:
    if spread.mean is None:
        return "n/a"
    q = spread.quantiles
    return (f"mean {spread.mean:.2f}, min {spread.min:.{digits}f}, max {spread.max:.{digits}f}, "
            + ", ".join(f"{k} {v:.{digits}f}" for k, v in q.items()))
