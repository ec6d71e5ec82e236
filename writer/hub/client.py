"""The few Hub calls publishing needs, through one `HfApi` bound to one endpoint and token, and
the sorting of their failures into: retry at once (a stale parent commit), retry after a pause
(429, 5xx, a dropped connection), or give up with one clear line.

The token is never printed: error texts are built from status codes and server messages, and any
accidental copy of the token in them is masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.errors import GymrecError
from shared.hub_errors import HubFailureKind, classify
from shared.version import VERSION


class PublishError(GymrecError):
    """Publishing to the Hub failed (no token, refused, unreachable); local data is untouched."""

    exit_code = 7


class HubAuthError(PublishError):
    """The Hub cannot be used at all from here (token refused, offline mode): stop trying."""


class StaleParent(Exception):
    """Someone committed since the repo was read (HTTP 412): read it again and retry."""


class Transient(Exception):
    """Worth retrying after `retry_after` seconds (None: the caller's own backoff)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Snapshot:
    """The head commit of a repo's main branch and every file path in it."""

    head: str
    files: frozenset[str]


class HubClient:
    """One endpoint, one token. Methods raise StaleParent, Transient or PublishError."""

    def __init__(self, endpoint: str, token: str, private: bool = False):
        from huggingface_hub import HfApi

        self.endpoint = endpoint
        self.private = private
        self._token = token
        self.api = HfApi(endpoint=endpoint, token=token, library_name="gymrec",
                         library_version=VERSION)
        self._user: str | None = None
        self._ensured: set[str] = set()

    def user(self) -> str:
        if self._user is None:
            self._user = self._call("whoami", self.api.whoami)["name"]
        return self._user

    def ensure_repo(self, repo_id: str) -> None:
        """Create the dataset repo unless it exists (`private` applies only at creation)."""
        if repo_id in self._ensured:
            return
        try:
            self._call(f"create {repo_id}", self.api.create_repo, repo_id, repo_type="dataset",
                       private=self.private, exist_ok=True)
        except HubAuthError:
            raise
        except PublishError as exc:
            # No right to create (e.g. in an org) is fine when the repo is already there.
            try:
                self._call(f"read {repo_id}", self.api.repo_info, repo_id, repo_type="dataset")
            except PublishError:
                raise exc from None
        self._ensured.add(repo_id)

    def snapshot(self, repo_id: str) -> Snapshot:
        info = self._call(f"read {repo_id}", self.api.repo_info, repo_id, repo_type="dataset")
        files = self._call(f"list {repo_id}", self.api.list_repo_files, repo_id,
                           repo_type="dataset", revision=info.sha)
        return Snapshot(info.sha, frozenset(files))

    def read_file(self, repo_id: str, path: str, revision: str) -> bytes:
        """The bytes of `path` in the repo at `revision` (through the Hugging Face cache: a file
        read before is not downloaded again)."""
        local = self._call(f"read {path} of {repo_id}", self.api.hf_hub_download, repo_id, path,
                           repo_type="dataset", revision=revision)
        return Path(local).read_bytes()

    def commit(self, repo_id: str, files: dict[str, Path | bytes], parent: str,
               message: str) -> str:
        """Add `files` (path in repo → local file or bytes) in one commit on top of `parent`;
        returns the new commit's oid once the Hub confirmed it."""
        from huggingface_hub import CommitOperationAdd

        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=src)
                      for path, src in files.items()]
        info = self._call(f"commit to {repo_id}", self.api.create_commit, repo_id, operations,
                          commit_message=message, repo_type="dataset", parent_commit=parent)
        return info.oid

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # sorted below; anything unknown becomes a PublishError
            raise self._classify(what, exc) from exc

    def _classify(self, what: str, exc: Exception) -> Exception:
        failure = classify(exc, self._token)
        said = f"{what}: {failure.detail}"
        match failure.kind:
            case HubFailureKind.STALE_PARENT:
                return StaleParent(said)
            case HubFailureKind.RETRY | HubFailureKind.NETWORK:
                return Transient(said, failure.retry_after)
            case HubFailureKind.OFFLINE:
                return HubAuthError("HF_HUB_OFFLINE is set: cannot reach the Hub")
            case HubFailureKind.AUTH:
                return HubAuthError(f"{said}: the Hub refused the token (check HF_TOKEN, .env "
                                    "or `hf auth login`)")
            case HubFailureKind.FORBIDDEN:
                return PublishError(f"{said}: the token may not write there")
        return PublishError(said)

    def _mask(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text
