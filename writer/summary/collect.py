"""Reading a dataset into its statistics and a few of its frames (for pictures), shard by shard."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shared.codec import decode_frame
from writer.export.reading import HubDataset, LocalDataset, read_batches
from writer.summary.pictures import evenly
from writer.summary.stats import STAT_COLUMNS, DatasetStats, StatsBuilder

Progress = Callable[[int, int, str], None]  # shards done, shards in all, shard name


def collect_stats(dataset: LocalDataset | HubDataset,
                  progress: Progress | None = None) -> tuple[DatasetStats, list[dict]]:
    """The statistics of every shard of `dataset`, and its sessions' files."""
    sessions = dataset.sessions()
    builder = StatsBuilder()
    shards = dataset.shards()
    for done, shard in enumerate(shards):
        if progress is not None:
            progress(done, len(shards), shard.name)
        builder.add_batches(read_batches(dataset.fetch(shard), list(STAT_COLUMNS)))
    if progress is not None:
        progress(len(shards), len(shards), "")
    return builder.build(sessions), sessions


def first_episode_frames(dataset: LocalDataset | HubDataset, sessions: list[dict],
                         count: int) -> list[np.ndarray]:
    """Up to `count` frames spread evenly over the dataset's first episode (in its first shard),
    decoded to uint8 arrays; [] for an empty dataset."""
    shards = dataset.shards()
    if not shards:
        return []
    start = next(s["start"] for s in sessions if s["start"]["session"] == shards[0].session_id)
    images: list[bytes] = []
    first: str | None = None
    for batch in read_batches(dataset.fetch(shards[0]), ["episode_id", "image"]):
        ids = batch.column("episode_id").to_pylist()
        first = first if first is not None or not ids else ids[0]
        cells = batch.column("image").to_pylist()
        images += [cell["bytes"] for eid, cell in zip(ids, cells, strict=True) if eid == first]
        if any(eid != first for eid in ids):
            break
    channels = int(start["frame_shape"][2])
    return [decode_frame(data, start["codec"], channels) for data in evenly(images, count)]
