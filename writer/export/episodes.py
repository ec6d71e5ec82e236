"""A dataset's rows regrouped into whole episodes, streamed: the shards are read one record batch
at a time and one episode is held in memory at once (its image bytes, not decoded frames).

An episode is yielded when its final row (`is_last`) arrives; an episode whose rows stop without
one, or skip steps (a gap cut it: its steps were dropped, or a crash), is yielded as `cut`,
ending at its last step before the hole (no steps at all when its start is missing: the
exporters count it as too short). Discarded episodes are not in the shards: never seen here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from writer.export.reading import HubDataset, LocalDataset, read_batches

Progress = Callable[[int, int, str], None]  # shards done, shards in all, shard name
_COLUMNS = ["session_id", "episode_id", "episode_index", "seed", "step", "timestamp", "image",
            "action", "reward", "terminated", "truncated", "is_last"]


@dataclass
class Episode:
    """One episode's rows: `images` has one more entry than the step lists when the episode's
    final observation was recorded (`final`), else as many (`cut`)."""

    session_id: str
    episode_id: str
    episode_index: int
    seed: int
    images: list[bytes] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)  # typed info per image, when read
    final: bool = False  # the final observation row was recorded
    cut: bool = False  # rows stop before the episode's end (a gap or a crash)

    @property
    def steps(self) -> int:
        return len(self.actions)


def _new(row: dict) -> Episode:
    return Episode(row["session_id"], row["episode_id"], row["episode_index"], row["seed"])


def episodes(dataset: LocalDataset | HubDataset, progress: Progress | None = None,
             info: bool = False) -> Iterator[Episode]:
    """Every episode of `dataset` in dataset order (see module docstring); `info`: with the
    typed info of each row (every shard must have the column)."""
    columns = [*_COLUMNS, "info"] if info else _COLUMNS
    shards = dataset.shards()
    current: Episode | None = None
    skip: str | None = None  # an episode whose rest is unusable (steps missing before it)
    for done, shard in enumerate(shards):
        if progress is not None:
            progress(done, len(shards), shard.name)
        for batch in read_batches(dataset.fetch(shard), columns):
            for row in batch.to_pylist():
                if row["episode_id"] == skip:
                    continue
                if current is not None and row["episode_id"] != current.episode_id:
                    current.cut = True
                    yield current
                    current = None
                if current is None:
                    current = _new(row)
                if row["step"] != current.steps:  # steps missing: a gap, or a cut start
                    skip = row["episode_id"]
                    current.cut = True
                    yield current  # with no steps when its start is missing: counted, skipped
                    current = None
                    continue
                current.images.append(row["image"]["bytes"])
                current.timestamps.append(row["timestamp"])
                if info:
                    current.infos.append(row["info"] or {})
                if row["is_last"]:
                    current.final = True
                    yield current
                    current = None
                    continue
                current.actions.append(row["action"])
                current.rewards.append(float(row["reward"] or 0.0))
                current.terminations.append(bool(row["terminated"]))
                current.truncations.append(bool(row["truncated"]))
    if current is not None:
        current.cut = True
        yield current
    if progress is not None:
        progress(len(shards), len(shards), "")
