"""Export to the LeRobot dataset v3.0 layout, as LeRobot's own loader reads it (lerobot 0.4+:
`lerobot/datasets/io_utils.py`, `dataset_metadata.py`, `dataset_reader.py`):

    meta/info.json                              codebase_version v3.0, fps, features, path templates
    meta/stats.json                             min / max / mean / std / count per feature
    meta/tasks.parquet                          one task ("Play <env id>"), index `task`
    meta/episodes/chunk-000/file-000.parquet    per episode: length, tasks, dataset_from/to_index,
                                                data/chunk_index, data/file_index
    data/chunk-NNN/file-NNN.parquet             frames, one row group per episode, ~100 MB a file

Frames are stored as images inside the data Parquet (LeRobot's `image` dtype, a `datasets`
Image column holding our own JPEG/PNG bytes: no re-encoding), under `observation.image`. A LeRobot
frame is an (observation, action) pair, so an episode of N steps gives N frames: the final
observation is left out (the gymrec dataset and the Minari export keep it). `next.reward`,
`next.done`, `next.terminated` and `next.truncated` are the outcome of the frame's action; an
episode cut by a gap ends at its last recorded step, `next.truncated` there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shared.codec import decode_frame
from shared.errors import UsageError
from writer.export.episodes import Episode
from writer.summary.pictures import evenly

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_MB = 100  # a data file is closed once it holds about this much
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
IMAGE_KEY = "observation.image"
STAT_FRAMES = 16  # frames per episode decoded for the image statistics
_OUTCOMES = ("next.reward", "next.done", "next.terminated", "next.truncated")


def action_feature(desc: dict, labels: list[str]) -> dict:
    """LeRobot's feature description of the action column."""
    kind = desc["type"]
    if kind == "Discrete":
        return {"dtype": "int64", "shape": [1], "names": None}
    if kind == "MultiBinary":
        return {"dtype": "int8", "shape": [desc["n"]], "names": labels or None}
    if kind == "MultiDiscrete":
        return {"dtype": "int64", "shape": [len(desc["nvec"])], "names": None}
    if kind == "Box":
        return {"dtype": "float32", "shape": [int(np.prod(desc["shape"]))], "names": None}
    raise UsageError(f"{kind} action spaces cannot be exported to LeRobot (flat vectors only)")


def features_of(start: dict) -> dict:
    """`features` of meta/info.json for a session's frames and actions."""
    return {
        IMAGE_KEY: {"dtype": "image", "shape": list(start["frame_shape"]),
                    "names": ["height", "width", "channels"]},
        "action": action_feature(start["action_space"], start.get("action_labels") or []),
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
        "next.truncated": {"dtype": "bool", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def hf_features(features: dict):
    """The `datasets.Features` LeRobot reads the data files with (its
    `get_hf_features_from_features`, for the shapes used here)."""
    import datasets

    out = {}
    for key, ft in features.items():
        if ft["dtype"] == "image":
            out[key] = datasets.Image()
        elif list(ft["shape"]) == [1]:
            out[key] = datasets.Value(ft["dtype"])
        else:
            out[key] = datasets.Sequence(length=ft["shape"][0], feature=datasets.Value(ft["dtype"]))
    return datasets.Features(out)


class _Moments:
    """Streaming min / max / mean / std / count of vectors (axis 0)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = self.squares = self.low = self.high = None

    def add(self, values: np.ndarray) -> None:
        values = values.astype(np.float64).reshape(len(values), -1)
        if not len(values):
            return
        sums, squares = values.sum(0), (values ** 2).sum(0)
        low, high = values.min(0), values.max(0)
        if self.total is None:
            self.total, self.squares, self.low, self.high = sums, squares, low, high
        else:
            self.total, self.squares = self.total + sums, self.squares + squares
            self.low, self.high = np.minimum(self.low, low), np.maximum(self.high, high)
        self.count += len(values)

    def result(self, shape: tuple[int, ...] | None = None) -> dict:
        if not self.count:
            return {}
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean ** 2, 0.0))
        shape = shape or mean.shape

        def fit(a: np.ndarray) -> list:
            return a.reshape(shape).tolist()

        return {"min": fit(self.low), "max": fit(self.high), "mean": fit(mean),
                "std": fit(std), "count": [self.count]}


@dataclass
class LeRobotCounts:
    episodes: int = 0
    steps: int = 0
    cut: int = 0
    skipped: int = 0


class LeRobotWriter:
    """Writes episodes into a LeRobot v3.0 folder; `finish()` writes the metadata."""

    def __init__(self, root: Path, sessions: list[dict], start: dict):
        self.root, self.start = root, start
        self.task = f"Play {start['env_id']}"
        self.fps = max(1, round(float(start["fps"])))
        self.features = features_of(start)
        self.schema = hf_features(self.features).arrow_schema
        self.counts = LeRobotCounts()
        self.episode_rows: list[dict] = []
        self.moments = {key: _Moments() for key in ("action", *_OUTCOMES, "timestamp",
                                                    "frame_index", "episode_index", "index",
                                                    "task_index", IMAGE_KEY)}
        self._writer: pq.ParquetWriter | None = None
        self._file = (0, 0)  # chunk index, file index
        self._file_bytes = 0

    def _data_writer(self, incoming: int) -> pq.ParquetWriter:
        if self._writer is not None and self._file_bytes + incoming > DATA_FILE_MB * 1e6:
            self._writer.close()
            self._writer = None
            chunk, file = self._file
            self._file = (chunk + 1, 0) if file + 1 >= CHUNKS_SIZE else (chunk, file + 1)
        if self._writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self._file[0],
                                                file_index=self._file[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
            self._file_bytes = 0
        return self._writer

    def add(self, episode: Episode) -> None:
        n = episode.steps
        if n < 1:
            self.counts.skipped += 1
            return
        index = self.counts.episodes
        first = self.counts.steps
        done = [False] * (n - 1) + [True]
        truncated = list(episode.truncations)
        if episode.cut:
            truncated[-1] = True
            self.counts.cut += 1
        images = episode.images[:n]
        columns = {
            IMAGE_KEY: [{"bytes": b, "path": None} for b in images],
            "action": self._actions(episode.actions),
            "next.reward": episode.rewards, "next.done": done,
            "next.terminated": episode.terminations, "next.truncated": truncated,
            "timestamp": [i / self.fps for i in range(n)],
            "frame_index": list(range(n)), "episode_index": [index] * n,
            "index": list(range(first, first + n)), "task_index": [0] * n,
        }
        table = pa.Table.from_pydict(columns, schema=self.schema)
        size = sum(len(b) for b in images)
        writer = self._data_writer(size)
        writer.write_table(table)  # one row group per episode, as LeRobot writes them
        self._file_bytes += size
        self._stats(columns, images)
        self.episode_rows.append({
            "episode_index": index, "tasks": [self.task], "length": n,
            "data/chunk_index": self._file[0], "data/file_index": self._file[1],
            "dataset_from_index": first, "dataset_to_index": first + n,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            "gymrec/episode_id": episode.episode_id, "gymrec/seed": episode.seed,
            "gymrec/cut_by_gap": episode.cut,
        })
        self.counts.episodes += 1
        self.counts.steps += n

    def _actions(self, actions: list) -> list:
        if self.start["action_space"]["type"] == "Box":
            return [[float(v) for v in a] for a in actions]
        return actions

    def _stats(self, columns: dict, images: list[bytes]) -> None:
        for key, moments in self.moments.items():
            if key == IMAGE_KEY:
                channels = self.start["frame_shape"][2]
                frames = np.stack([decode_frame(b, self.start["codec"], channels)
                                   for b in evenly(images, STAT_FRAMES)])
                moments.add(frames.reshape(-1, channels) / 255.0)
            else:
                moments.add(np.asarray(columns[key], dtype=np.float64))

    def finish(self) -> None:
        import pandas as pd

        if self._writer is not None:
            self._writer.close()
        meta = self.root / "meta"
        episodes_file = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episode_rows), episodes_file)
        tasks = pd.DataFrame({"task_index": [0]}, index=pd.Index([self.task], name="task"))
        tasks.to_parquet(meta / "tasks.parquet")
        channels = self.start["frame_shape"][2]
        stats = {key: m.result((channels, 1, 1) if key == IMAGE_KEY else None)
                 for key, m in self.moments.items()}
        (meta / "stats.json").write_text(json.dumps(stats, indent=1))
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": f"gymrec-{self.start['platform']}",
            "fps": self.fps, "features": self.features,
            "total_episodes": self.counts.episodes, "total_frames": self.counts.steps,
            "total_tasks": 1, "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
            "video_files_size_in_mb": 200, "data_path": DATA_PATH, "video_path": None,
            "splits": {"train": f"0:{self.counts.episodes}"},
        }
        (meta / "info.json").write_text(json.dumps(info, indent=1))
