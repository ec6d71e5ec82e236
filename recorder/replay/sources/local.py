"""Where replay reads a recorded dataset from: a small interface, and the local folder behind it.

A source hands out the dataset's session files (`.meta/sessions/<id>.json`: the start message,
the episodes and how each ended, gaps, status) and, per session, its sealed shards in order, each
read batch by batch, so replay holds one batch in memory however long the recording is. The Hub
source (a dataset repo as `gymrec-writer push` publishes it) is in recorder/replay/sources/hub.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.ipc as ipc

from shared.config import hub_endpoint, hub_token
from shared.errors import GymrecError, UsageError
from shared.layout import DatasetLayout, ShardName

VERIFY_HINT = " (check the dataset with `gymrec-writer verify ENV_ID`)"


class DatasetNotFound(UsageError):
    """No recorded dataset where one was expected."""


class DatasetDamaged(GymrecError):
    """A session file, the manifest or a shard cannot be read."""


@dataclass(frozen=True)
class ShardRef:
    file: str  # relative to the dataset root, e.g. "data/<session>-0001.arrow"
    session_id: str
    rows: int | None  # None: not known before the shard is read (a Hub shard)


class DatasetSource(Protocol):
    """A recorded dataset, read in session order and shard order."""

    @property
    def where(self) -> str:
        """Where the dataset is, for messages (a folder, a repo id)."""
        ...

    def sessions(self) -> list[dict]:
        """Every session file, oldest session first."""
        ...

    def shards(self, session_id: str) -> list[ShardRef]:
        """The sealed shards of a session, in the order they were written."""
        ...

    def batches(self, shard: ShardRef) -> Iterator[pa.RecordBatch]:
        """The rows of one shard, one Arrow batch at a time."""
        ...

    def damaged_shards(self, session_id: str) -> list[str]:
        """The session's shards known to be missing or damaged, each as "<file> (<why>)"."""
        ...


@dataclass(frozen=True)
class LocalSource:
    """A dataset folder as the writer leaves it (`data/`, `.meta/manifest.json`, sessions)."""

    root: Path

    @property
    def where(self) -> str:
        return str(self.root)

    def sessions(self) -> list[dict]:
        folder = DatasetLayout(self.root).sessions
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if not files:
            raise DatasetNotFound(f"no recorded dataset in {self.root}")
        sessions = [_read_json(path) for path in files]
        return sorted(sessions, key=lambda s: (s["start"]["started_at"], s["start"]["session"]))

    def shards(self, session_id: str) -> list[ShardRef]:
        manifest = _read_json(DatasetLayout(self.root).manifest, {"shards": []})
        refs = [ShardRef(s["file"], s["session_id"], s["rows"]) for s in manifest["shards"]
                if s["session_id"] == session_id]
        return sorted(refs, key=lambda r: _shard_index(r.file))

    def damaged_shards(self, session_id: str) -> list[str]:
        manifest = _read_json(DatasetLayout(self.root).manifest, {"shards": []})
        found = [f"{file} (failed its checksum; moved to .corrupt/)"
                 for file in manifest.get("quarantined", [])
                 if (name := ShardName.parse(file)) is not None and name.session == session_id]
        for entry in manifest["shards"]:
            if entry["session_id"] != session_id:
                continue
            path = self.root / entry["file"]
            if not path.is_file():
                found.append(f"{entry['file']} (missing)")
            elif path.stat().st_size != entry["bytes"]:
                found.append(f"{entry['file']} ({path.stat().st_size} bytes, "
                             f"{entry['bytes']} when sealed)")
        return found

    def batches(self, shard: ShardRef) -> Iterator[pa.RecordBatch]:
        path = self.root / shard.file
        # Plain reads, not a memory map: only the batch at hand is in memory, however big the
        # shard (a map would keep every page read so far resident).
        try:
            source = pa.OSFile(str(path))
        except OSError as exc:
            raise DatasetDamaged(f"cannot read shard {path}: {exc}{VERIFY_HINT}") from exc
        with source:
            try:
                reader = ipc.open_stream(source)
            except (OSError, pa.ArrowException) as exc:
                raise DatasetDamaged(f"cannot read shard {path}: {exc}{VERIFY_HINT}") from exc
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (OSError, pa.ArrowException) as exc:
                    raise DatasetDamaged(f"shard {path} is damaged: {exc}{VERIFY_HINT}") from exc
                yield batch


def open_source(dataset_root: Path, repo: str | None = None) -> DatasetSource:
    """The source of a dataset: the Hub repo `repo` (endpoint and token from the config layer)
    when given, else the local folder `dataset_root`."""
    if repo is not None:
        from recorder.replay.sources.hub import open_hub_source

        return open_hub_source(repo, hub_endpoint(), hub_token())
    if not DatasetLayout(dataset_root).sessions.is_dir():
        raise DatasetNotFound(f"no recorded dataset in {dataset_root} "
                              "(record one with gymrec-record, or pass --data-dir)")
    return LocalSource(dataset_root)


def _read_json(path: Path, default: dict | None = None) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        if default is not None:
            return default
        raise DatasetDamaged(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise DatasetDamaged(f"cannot read {path}: {exc}") from exc


def _shard_index(file: str) -> int:
    """`data/<session>-0012.arrow` → 12 (a name that is no shard's sorts first)."""
    name = ShardName.parse(file)
    return name.index if name is not None else 0
