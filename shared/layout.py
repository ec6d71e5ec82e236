"""Where a dataset's files live. One folder per env under the data folder:

    <env>/README.md                  dataset card
    <env>/data/<session>-<n>.arrow   sealed Arrow IPC stream shards (complete, checksummed)
    <env>/.incoming/...              shards being written (hidden from `load_dataset`)
    <env>/.discarded/...             rows of episodes the player discarded (kept, not loaded)
    <env>/.meta/manifest.json        every sealed shard: rows, seq range, bytes, sha256
    <env>/.meta/sessions/<id>.json    a session's start message, episodes, gaps and status
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetLayout:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def incoming(self) -> Path:
        return self.root / ".incoming"

    @property
    def discarded(self) -> Path:
        return self.root / ".discarded"

    @property
    def meta(self) -> Path:
        return self.root / ".meta"

    @property
    def manifest(self) -> Path:
        return self.meta / "manifest.json"

    @property
    def card(self) -> Path:
        return self.root / "README.md"

    def session_file(self, session_id: str) -> Path:
        return self.meta / "sessions" / f"{session_id}.json"

    def shard_name(self, session_id: str, index: int) -> str:
        return f"{session_id}-{index:04d}.arrow"

    def create(self) -> None:
        for folder in (self.data, self.incoming, self.meta / "sessions"):
            folder.mkdir(parents=True, exist_ok=True)
