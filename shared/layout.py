"""Where a dataset's files live. One folder per env under the data folder:

    <env>/README.md                  dataset card
    <env>/data/<session>-<n>.arrow   sealed Arrow IPC stream shards (complete, checksummed)
    <env>/.incoming/...              shards being written (hidden from `load_dataset`)
    <env>/.discarded/...             rows of episodes the player discarded (kept, not loaded)
    <env>/.meta/manifest.json        every sealed shard: rows, seq range, bytes, xxh3_128
    <env>/.meta/sessions/<id>.json   a session's start message, episodes, gaps and status
    <env>/.meta/info.json            counts and environment, derived from the above
    <env>/.meta/uploads.json         what was published to which Hub repo (journal)

On the Hub the same dataset is `README.md`, `data/<session>-<n>.parquet` and
`meta/sessions/<id>.json`. Shard names are made and read only here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHARD_SUFFIX = ".arrow"
HUB_SHARD_SUFFIX = ".parquet"
HUB_SESSIONS_DIR = "meta/sessions/"
_SHARD_NAME = re.compile(r"^(?P<session>[0-9a-f]{32})-(?P<index>\d{4,})\.(?:arrow|parquet)$")


@dataclass(frozen=True, kw_only=True)
class ShardName:
    """`<session>-<index>.arrow`: a session's shards numbered in write order from 1."""

    session: str
    index: int

    def file_name(self, suffix: str = SHARD_SUFFIX) -> str:
        return f"{self.session}-{self.index:04d}{suffix}"

    @classmethod
    def parse(cls, name: str) -> ShardName | None:
        """The shard a file name or path (`data/<session>-0012.arrow`) names; None if none."""
        match = _SHARD_NAME.match(name.rsplit("/", 1)[-1])
        if match is None:
            return None
        return cls(session=match["session"], index=int(match["index"]))


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

    @property
    def sessions(self) -> Path:
        return self.meta / "sessions"

    @property
    def info(self) -> Path:
        return self.meta / "info.json"

    def session_file(self, session_id: str) -> Path:
        return self.sessions / f"{session_id}.json"

    def shard_name(self, session_id: str, index: int) -> str:
        return ShardName(session=session_id, index=index).file_name()

    def shards_of(self, folder: Path, session_id: str | None = None) -> list[Path]:
        """Shard files in `folder` (of one session if given), in write order per session."""
        found = [(name, path) for path in folder.glob(f"*{SHARD_SUFFIX}")
                 if (name := ShardName.parse(path.name)) is not None
                 and (session_id is None or name.session == session_id)]
        return [path for name, path in sorted(found, key=lambda f: (f[0].session, f[0].index))]

    def create(self) -> None:
        for folder in (self.data, self.incoming, self.sessions):
            folder.mkdir(parents=True, exist_ok=True)
