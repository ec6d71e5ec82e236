"""Reading a recorded dataset shard by shard, for exports and summaries: a local folder (the
sealed Arrow shards in its `data/`) or a Hub repo as `gymrec-writer push` publishes it
(`data/<session>-<n>.parquet`, `meta/sessions/<id>.json`).

Both give the sessions' files (ordered by start time) and the shards in dataset order (sessions in
that order, each session's shards in write order); a shard is read one record batch at a time, so
memory stays flat however long the dataset is. Discarded episodes are not in the shards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from shared.errors import GymrecError, StorageError, UsageError
from shared.layout import HUB_SESSIONS_DIR, DatasetLayout, ShardName

BATCH_ROWS = 256  # rows per record batch read from a Parquet shard


class DatasetUnreadable(GymrecError):
    """A shard or session file that cannot be read (damaged, or not a gymrec dataset)."""

    exit_code = 1


class HubUnreachable(GymrecError):
    """The Hub did not answer, or refused (network, token, HF_HUB_OFFLINE): as replay, 7."""

    exit_code = 7


def hub_error(what: str, exc: Exception, token: str | None) -> GymrecError:
    """One error line for a failed Hub call, with the exit code of its kind."""
    from shared.hub_errors import HubFailureKind, classify

    failure = classify(exc, token)
    if failure.kind in (HubFailureKind.REPO_NOT_FOUND, HubFailureKind.GATED):
        return UsageError(f"{what}: no such dataset repo, or it is gated ({failure.detail})")
    if failure.kind is HubFailureKind.LOCAL_IO:
        return StorageError(f"{what}: the Hugging Face cache cannot be written "
                            f"({failure.detail})")
    return HubUnreachable(f"{what}: {failure.detail}")


@dataclass(frozen=True)
class ShardRef:
    """One shard: its session, its name (for messages) and where its bytes are."""

    session_id: str
    name: str
    path: Path | None  # local file (Arrow stream or Parquet); None until a Hub shard is fetched
    hub_path: str | None = None  # path in a Hub repo


def _session_key(state: dict) -> tuple:
    start = state.get("start") or {}
    return (start.get("started_at", 0.0), start.get("session", ""))


def _check_session(state: object, where: str) -> dict:
    if not isinstance(state, dict) or not isinstance(state.get("start"), dict):
        raise DatasetUnreadable(f"{where}: not a gymrec session file")
    return {"episodes": [], "gaps": [], "discarded": [], **state}


class LocalDataset:
    """A dataset folder `DATA_DIR/<env>` as the writer keeps it."""

    def __init__(self, root: Path, *, must_exist: bool = True):
        self.layout = DatasetLayout(root)
        if must_exist and not self.layout.manifest.is_file():
            raise UsageError(f"no dataset in {root}")
        self.where = str(root)

    def sessions(self) -> list[dict]:
        states = []
        for path in sorted(self.layout.sessions.glob("*.json")):
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DatasetUnreadable(f"{path}: cannot be read ({exc}); run gymrec-writer "
                                        "verify") from exc
            states.append(_check_session(state, str(path)))
        return sorted(states, key=_session_key)

    def shards(self) -> list[ShardRef]:
        order = {s["start"]["session"]: i for i, s in enumerate(self.sessions())}
        if not self.layout.data.is_dir():
            return []
        found = [(ShardName.parse(p.name), p) for p in self.layout.shards_of(self.layout.data)]
        found.sort(key=lambda f: (order.get(f[0].session, len(order)), f[0].session,
                                  f[0].index))
        return [ShardRef(name.session, path.name, path) for name, path in found]

    def fetch(self, shard: ShardRef) -> ShardRef:
        return shard


class HubDataset:
    """A Hub dataset repo as `gymrec-writer push` publishes it, at its head when opened; shards
    are downloaded one at a time into the Hugging Face cache."""

    def __init__(self, repo_id: str, endpoint: str, token: str | None):
        from huggingface_hub import HfApi

        self.repo_id, self.where = repo_id, f"{endpoint}/datasets/{repo_id}"
        self._api = HfApi(endpoint=endpoint, token=token)
        try:
            info = self._api.repo_info(repo_id, repo_type="dataset")
            self._files = sorted(self._api.list_repo_files(repo_id, repo_type="dataset",
                                                           revision=info.sha))
        except Exception as exc:  # the client raises many kinds: sorted by hub_error
            raise hub_error(f"cannot read the Hub repo {repo_id}", exc, token) from exc
        self._revision = info.sha

    def _download(self, path: str) -> Path:
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.repo_id, path, repo_type="dataset",
                                        revision=self._revision, endpoint=self._api.endpoint,
                                        token=self._api.token))
        except Exception as exc:
            raise hub_error(f"{self.repo_id}/{path} cannot be downloaded", exc,
                            self._api.token) from exc

    def sessions(self) -> list[dict]:
        states = []
        for path in self._files:
            if path.startswith(HUB_SESSIONS_DIR) and path.endswith(".json"):
                local = self._download(path)
                try:
                    state = json.loads(local.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise DatasetUnreadable(f"{path}: not JSON ({exc})") from exc
                states.append(_check_session(state, path))
        if not states:
            raise UsageError(f"{self.repo_id} holds no gymrec sessions ({HUB_SESSIONS_DIR})")
        return sorted(states, key=_session_key)

    def shards(self) -> list[ShardRef]:
        order = {s["start"]["session"]: i for i, s in enumerate(self.sessions())}
        found = [(name, path) for path in self._files if path.startswith("data/")
                 and (name := ShardName.parse(path)) is not None]
        found.sort(key=lambda f: (order.get(f[0].session, len(order)), f[0].session,
                                  f[0].index))
        return [ShardRef(name.session, path.rsplit("/", 1)[-1], None, path)
                for name, path in found]

    def fetch(self, shard: ShardRef) -> ShardRef:
        """The shard with its bytes downloaded (cached by huggingface_hub)."""
        if shard.path is not None:
            return shard
        return ShardRef(shard.session_id, shard.name, self._download(shard.hub_path),
                        shard.hub_path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_batches(shard: ShardRef, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of a fetched shard (only `columns` if given), one at a time.
    Raises DatasetUnreadable for a damaged shard."""
    try:
        if shard.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            with pq.ParquetFile(shard.path) as parquet:
                yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
            return
        with pa.memory_map(str(shard.path)) as source:
            reader = pa.ipc.open_stream(source)
            for batch in reader:
                yield batch.select(columns) if columns else batch
    except (pa.ArrowException, OSError) as exc:
        raise DatasetUnreadable(f"{shard.name}: cannot be read ({_first_line(exc)}); check it "
                                "with gymrec-writer verify") from exc


def open_dataset(env_root: Path | None, repo_id: str | None, endpoint: str = "",
                 token: str | None = None) -> LocalDataset | HubDataset:
    """The local dataset folder, or the Hub repo when `repo_id` is given."""
    if repo_id:
        return HubDataset(repo_id, endpoint, token)
    return LocalDataset(env_root)
