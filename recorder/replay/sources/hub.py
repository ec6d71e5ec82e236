"""Replay's source for a dataset repo on the Hugging Face Hub, laid out as `gymrec-writer push`
publishes it: `meta/sessions/<id>.json` (the same session files as `.meta/sessions/` locally) and
`data/<session>-<nnnn>.parquet` (one sealed shard each, with the local Arrow schema).

The repo is read at one commit, its head when opened, so a push during the replay changes nothing
under it. Each shard is downloaded whole into the Hugging Face cache (`HF_HOME`; a file already
there is reused, nothing is deleted) and read one batch at a time; meanwhile the session's next
shard downloads in the background. Every failure of the Hub client becomes one GymrecError.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recorder.replay.sources.local import DatasetDamaged, DatasetNotFound, ShardRef
from shared.config import DEFAULT_HUB_ENDPOINT
from shared.errors import GymrecError, StorageError, UsageError
from shared.hub_errors import HubFailureKind, classify
from shared.layout import HUB_SESSIONS_DIR, HUB_SHARD_SUFFIX, ShardName
from shared.schema import ADDED_COLUMNS, COLUMNS
from shared.version import VERSION

BATCH_ROWS = 100  # rows per batch read: the writer's Parquet row group
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
NO_TOKEN_HINT = "if it is private, set HF_TOKEN, put it in .env or run `hf auth login`"


class HubUnavailable(GymrecError):
    """The Hub could not be read: network, refused token, offline mode, a repo that changed."""

    exit_code = 7


# -- the repo's file list, as plain values ----------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    """`owner/name`, or UsageError naming the bad value."""
    if not _REPO_ID.match(repo_id) or ".." in repo_id or len(repo_id.split("/")[1]) > 96:
        raise UsageError(f"--repo {repo_id!r} is not a Hub repo id (owner/name)")
    return repo_id


def shard_files(paths: Iterable[str]) -> dict[str, list[str]]:
    """The shard files of each session in write order (`data/<session>-<nnnn>.parquet`, by
    number); other files under `data/` are not shards and are left out."""
    found: dict[str, list[tuple[int, str]]] = {}
    for path in paths:
        name = ShardName.parse(path)
        if name is not None and path == f"data/{name.file_name(HUB_SHARD_SUFFIX)}":
            found.setdefault(name.session, []).append((name.index, path))
    return {session: [path for _, path in sorted(files)] for session, files in found.items()}


def session_files(paths: Iterable[str]) -> list[str]:
    """`meta/sessions/<id>.json` files, by name."""
    return sorted(p for p in paths if p.startswith(HUB_SESSIONS_DIR) and p.endswith(".json")
                  and "/" not in p[len(HUB_SESSIONS_DIR):])


def describe(repo_id: str, endpoint: str) -> str:
    """The repo for messages: its id, with the endpoint when it is not huggingface.co."""
    return repo_id if endpoint == DEFAULT_HUB_ENDPOINT else f"{repo_id} on {endpoint}"


# -- the source -------------------------------------------------------------------------------


@dataclass
class _Download:
    """One shard downloading in the background: its cached path, or the error it met."""

    done: threading.Event = field(default_factory=threading.Event)
    path: str | None = None
    error: GymrecError | None = None


class HubSource:
    """A dataset repo at one commit (see the module docstring). Open with `open_hub_source`."""

    def __init__(self, api: Any, repo_id: str, revision: str, sessions: list[str],
                 shards: dict[str, list[str]], where: str, token: str | None):
        self._api, self.repo_id, self.revision = api, repo_id, revision
        self._session_files, self._shards = sessions, shards
        self._where, self._token = where, token
        self._pending: dict[str, _Download] = {}

    @property
    def where(self) -> str:
        return self._where

    def sessions(self) -> list[dict]:
        try:  # all at once, several in parallel: a repo may hold hundreds of sessions
            folder = Path(self._api.snapshot_download(
                self.repo_id, repo_type="dataset", revision=self.revision,
                allow_patterns=self._session_files))
        except Exception as exc:  # sorted by hub_error
            raise hub_error(exc, f"download the session files of {self.where}", self._where,
                            self._api.endpoint, self._token) from exc
        sessions = [self._read_json(folder / file, file) for file in self._session_files]
        return sorted(sessions, key=lambda s: (s["start"]["started_at"], s["start"]["session"]))

    def shards(self, session_id: str) -> list[ShardRef]:
        # Row counts sit in each Parquet footer: unknown until the shard is downloaded.
        return [ShardRef(path, session_id, None) for path in self._shards.get(session_id, [])]

    def damaged_shards(self, session_id: str) -> list[str]:
        return []  # the Hub checks what it was sent; a shard it cannot serve raises

    def batches(self, shard: ShardRef) -> Iterator[pa.RecordBatch]:
        path = self._fetch(shard.file)
        following = self._shards.get(shard.session_id, [])
        if shard.file in following and following[-1] != shard.file:
            self._prefetch(following[following.index(shard.file) + 1])
        try:
            parquet = pq.ParquetFile(path)  # plain reads: only the batch at hand is in memory
        except (OSError, pa.ArrowException) as exc:
            raise DatasetDamaged(f"cannot read shard {shard.file} of {self.where}: {exc}") from exc
        with parquet:
            missing = [c for c in COLUMNS if c not in parquet.schema_arrow.names
                       and c not in ADDED_COLUMNS]
            if missing:
                raise DatasetDamaged(f"shard {shard.file} of {self.where} lacks the columns "
                                     f"{', '.join(missing)}: not a gymrec shard")
            batches = parquet.iter_batches(batch_size=BATCH_ROWS)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except (OSError, pa.ArrowException) as exc:
                    raise DatasetDamaged(f"shard {shard.file} of {self.where} is damaged: "
                                         f"{exc}") from exc
                yield batch

    def _read_json(self, path: Path, file: str) -> dict:
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError) as exc:
            raise DatasetDamaged(f"cannot read {file} of {self.where}: {exc}") from exc
        start = state.get("start") if isinstance(state, dict) else None
        if not isinstance(start, dict) or not {"session", "started_at", "env_id"} <= start.keys():
            raise DatasetDamaged(f"{file} of {self.where} is not a gymrec session file")
        return state

    # -- shard downloads ----------------------------------------------------------------------

    def _fetch(self, file: str) -> str:
        """The cached path of `file`, downloaded now unless a prefetch has it (or is on it)."""
        pending = self._pending.pop(file, None)
        if pending is None:
            return self._download(file)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.path

    def _prefetch(self, file: str) -> None:
        if file in self._pending:
            return
        pending = self._pending[file] = _Download()

        def run() -> None:
            try:
                pending.path = self._download(file)
            except GymrecError as exc:
                pending.error = exc
            finally:
                pending.done.set()

        # A daemon: a replay that stops early (Ctrl-C, an error) must not wait for the download.
        threading.Thread(target=run, name=f"download {file}", daemon=True).start()

    def _download(self, file: str) -> str:
        try:
            return self._api.hf_hub_download(self.repo_id, file, repo_type="dataset",
                                              revision=self.revision)
        except Exception as exc:  # sorted by hub_error; anything unknown is one line too
            raise hub_error(exc, f"download {file} of {self.where}", self._where,
                            self._api.endpoint, self._token) from exc


def open_hub_source(repo_id: str, endpoint: str, token: str | None) -> HubSource:
    """The repo at its current head. Raises UsageError (bad id), DatasetNotFound (no such repo,
    or no session files or shards in it), HubUnavailable."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import disable_progress_bars

    check_repo_id(repo_id)
    where = describe(repo_id, endpoint)
    api = HfApi(endpoint=endpoint, token=token, library_name="gymrec", library_version=VERSION)
    try:
        head = api.repo_info(repo_id, repo_type="dataset").sha
        files = api.list_repo_files(repo_id, repo_type="dataset", revision=head)
    except Exception as exc:  # sorted by hub_error
        raise hub_error(exc, f"read {where}", where, endpoint, token) from exc
    sessions, shards = session_files(files), shard_files(files)
    if not sessions:
        raise DatasetNotFound(f"no recorded dataset in {where}: it has no {HUB_SESSIONS_DIR}*.json "
                              "(publish one with gymrec-writer push)")
    if not shards:
        raise DatasetNotFound(f"no shards in {where}: its data/ has no <session>-<n>.parquet")
    # The client's per-file bars would break through replay's own progress display.
    disable_progress_bars()
    return HubSource(api, repo_id, head, sessions, shards, where, token)


def hub_error(exc: Exception, what: str, where: str, endpoint: str,
              token: str | None) -> GymrecError:
    """One GymrecError for a failure of the Hub client, its message free of the token."""
    if isinstance(exc, GymrecError):
        return exc
    failure = classify(exc, token)
    said = f"{what}: {failure.detail}"
    match failure.kind:
        case HubFailureKind.GATED:
            return HubUnavailable(f"{where} is gated: accept its conditions on the Hub, with the "
                                  "account of the token used here")
        case HubFailureKind.REPO_NOT_FOUND:
            hint = "the token used may not read it, if private" if token else NO_TOKEN_HINT
            return DatasetNotFound(f"no dataset repo {where} ({hint})")
        case HubFailureKind.OFFLINE:
            return HubUnavailable(f"HF_HUB_OFFLINE is set: cannot read {where}")
        case HubFailureKind.NOT_CACHED:
            return HubUnavailable(f"{what}: cannot reach {endpoint} (check the connection)")
        case HubFailureKind.REVISION_GONE:
            return HubUnavailable(f"{what}: the commit being replayed is gone (the repo's "
                                  "history was rewritten): run again")
        case HubFailureKind.FILE_NOT_FOUND:
            return DatasetDamaged(f"{what}: listed in the repo, but the Hub does not serve it")
        case HubFailureKind.AUTH:
            return HubUnavailable(f"{said}: the Hub refused the token (check HF_TOKEN, .env or "
                                  "`hf auth login`)")
        case HubFailureKind.NETWORK:
            return HubUnavailable(f"{what}: cannot reach {endpoint} ({failure.detail})")
        case HubFailureKind.LOCAL_IO:
            return StorageError(f"{what}: cannot write the Hugging Face cache "
                                f"({failure.detail.split(': ', 1)[-1]})")
    return HubUnavailable(said)
