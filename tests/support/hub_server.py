"""A local, threaded, Hub-compatible HTTP server, so the real `huggingface_hub` and `datasets`
clients run in tests without the internet.

It speaks the part of the Hub API that uploads and downloads of dataset repos use (whoami, repo
create / info, validate-yaml, preupload, commit with `parentCommit`, tree, paths-info, resolve with
Range, the LFS batch API and its PUTs), keeps every repo as a list of commits, and logs every
request. Upload mode per file is the server's choice: `lfs=False` answers "regular" for every file
(the client sends contents inside the commit); `lfs=True` answers "lfs" for binary files as the Hub
does, which the client can only follow with Xet disabled (`HF_HUB_DISABLE_XET=1`).

Faults for tests: `fail_next` (a status, before or after applying a commit), `hang_next` (hold a
request until released, to kill the client at a known point), `drop_next` (close the connection
without an answer) and `race_next_commit` (someone else commits first: a stale parent gets 412).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

GITATTRIBUTES = b"""*.arrow filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.jpg filter=lfs diff=lfs merge=lfs -text
*.png filter=lfs diff=lfs merge=lfs -text
"""
_BINARY_SUFFIXES = (".parquet", ".arrow", ".jpg", ".png", ".bin")
_REPO = r"^/api/datasets/(?P<repo>[^/]+/[^/]+?)"
_FILES = r"^/datasets/(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("GET", "whoami", re.compile(r"^/api/whoami-v2$")),
    ("POST", "create", re.compile(r"^/api/repos/create$")),
    ("POST", "validate-yaml", re.compile(r"^/api/validate-yaml$")),
    ("GET", "info", re.compile(_REPO + r"(?:/revision/(?P<rev>[^/]+))?$")),
    ("POST", "preupload", re.compile(_REPO + r"/preupload/(?P<rev>[^/]+)$")),
    ("POST", "commit", re.compile(_REPO + r"/commit/(?P<rev>[^/]+)$")),
    ("GET", "tree", re.compile(_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")),
    ("POST", "paths-info", re.compile(_REPO + r"/paths-info/(?P<rev>[^/]+)$")),
    ("GET", "resolve", re.compile(_FILES + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")),
    ("HEAD", "resolve", re.compile(_FILES + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")),
    ("POST", "lfs-batch", re.compile(_FILES + r"\.git/info/lfs/objects/batch$")),
    ("PUT", "lfs-put", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$")),
]


class _Reply(Exception):
    """Raised inside a handler to answer with an error status."""

    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status, self.error_code = status, error_code


@dataclass
class Blob:
    data: bytes
    lfs: bool

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def oid(self) -> str:
        """The oid the Hub reports for identical-file checks: sha256 for LFS, git sha1 else."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, Blob]


@dataclass
class Repo:
    id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]


@dataclass
class Fault:
    route: str
    kind: str  # "status" | "hang" | "drop" | "race"
    status: int = 500
    apply: bool = False  # for commits: apply it before failing
    retry_after: str | None = None
    times: int = 1
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class HubServer:
    """`with HubServer() as hub:` serves on `hub.url`; `hub.log` lists every request answered."""

    def __init__(self, token: str = "hf_test_token_0123456789", user: str = "me",
                 lfs: bool = False):
        self.token, self.user, self.lfs = token, user, lfs
        self.repos: dict[str, Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.log: list[dict] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._commit_counter = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for fault in self._faults:
            fault.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- fault injection ----------------------------------------------------------------------

    def fail_next(self, route: str, status: int, *, apply: bool = False,
                  retry_after: str | None = None, times: int = 1) -> Fault:
        """Answer the next `times` requests of `route` with `status` (a commit is applied first
        when `apply`)."""
        return self._add(Fault(route, "status", status, apply, retry_after, times))

    def hang_next(self, route: str, *, apply: bool = False) -> Fault:
        """Hold the next request of `route` (after applying it when `apply`) until
        `fault.release` is set; `fault.reached` is set when it is being held."""
        return self._add(Fault(route, "hang", apply=apply))

    def drop_next(self, route: str, *, apply: bool = False) -> Fault:
        """Close the connection of the next request of `route` without answering."""
        return self._add(Fault(route, "drop", apply=apply))

    def race_next_commit(self) -> Fault:
        """Just before the next commit is handled, someone else commits to the same repo."""
        return self._add(Fault("commit", "race"))

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # -- inspection ---------------------------------------------------------------------------

    def files(self, repo_id: str) -> dict[str, bytes]:
        with self._lock:
            return {p: b.data for p, b in self.repos[repo_id].head.files.items()}

    def commits(self, repo_id: str) -> list[Commit]:
        with self._lock:
            return list(self.repos[repo_id].commits)

    def requests(self, route: str | None = None, status: int | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.log if (route is None or e["route"] == route)
                    and (status is None or e["status"] == status)]

    def committed_paths(self, repo_id: str) -> list[str]:
        """Every path added by an applied commit, in order (a path twice: sent twice)."""
        return [p for e in self.requests("commit") if e.get("applied") and e["repo"] == repo_id
                for p in e["added"]]

    # -- repo state (called with the lock held) -----------------------------------------------

    def _new_commit(self, repo: Repo, summary: str, files: dict[str, Blob]) -> Commit:
        self._commit_counter += 1
        parent = repo.commits[-1].oid if repo.commits else None
        seed = f"{repo.id}|{parent}|{summary}|{self._commit_counter}|{time.time_ns()}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, summary, files)
        repo.commits.append(commit)
        return commit

    def _repo(self, repo_id: str, authorized: bool) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not authorized):
            raise _Reply(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _revision(self, repo: Repo, rev: str) -> Commit:
        rev = unquote(rev)
        if rev == "main":
            return repo.head
        for commit in repo.commits:
            if commit.oid == rev:
                return commit
        raise _Reply(404, f"Revision {rev} not found", "RevisionNotFound")


def _handler_for(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_state = hub

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: HubServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:  # the request log is `hub.log`
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # -- plumbing -----------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        hub = self.server_state
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.body = self._read_body()
        entry = {"method": method, "path": unquote(url.path), "route": "unknown", "status": 0,
                 "repo": None, "at": time.time()}
        for m, name, pattern in _ROUTES:
            match = pattern.match(url.path)
            if m == method and match:
                entry["route"] = name
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                entry["repo"] = params.get("repo")
                break
        else:
            params = None
        fault = hub._take_fault(entry["route"]) if params is not None else None
        try:
            if params is None:
                raise _Reply(404, f"no route for {method} {url.path}")
            if fault is not None and fault.kind == "race":
                self._race(params["repo"])
                fault = None
            if fault is not None and not fault.apply:
                self._misbehave(fault, entry)
                return
            status, headers, body = getattr(self, "_" + entry["route"].replace("-", "_"))(
                params, entry)
            if fault is not None:
                entry["applied"] = entry.get("applied", False)
                self._misbehave(fault, entry)
                return
        except _Reply as reply:
            status, headers = reply.status, {"X-Error-Message": str(reply)}
            if reply.error_code:
                headers["X-Error-Code"] = reply.error_code
            body = json.dumps({"error": str(reply)}).encode()
        entry["status"] = status
        with hub._lock:
            hub.log.append(entry)
        self._send(status, headers, body, head=method == "HEAD")

    def _misbehave(self, fault: Fault, entry: dict) -> None:
        hub = self.server_state
        entry["fault"] = fault.kind
        if fault.kind == "status":
            entry["status"] = fault.status
            with hub._lock:
                hub.log.append(entry)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            body = json.dumps({"error": f"injected {fault.status}"}).encode()
            self._send(fault.status, headers, body)
            return
        with hub._lock:
            hub.log.append(entry)
        if fault.kind == "hang":
            fault.reached.set()
            fault.release.wait(120)
        # "drop", or a held request let go: the client never gets an answer.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict, body: bytes, head: bool = False) -> None:
        try:
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server_state.token}"

    def _require_token(self) -> None:
        if not self._authorized():
            raise _Reply(401, "Invalid credentials in Authorization header")

    def _json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise _Reply(400, f"bad JSON: {exc}") from exc

    @staticmethod
    def _ok(value: object, status: int = 200) -> tuple[int, dict, bytes]:
        return status, {}, json.dumps(value).encode()

    # -- routes -------------------------------------------------------------------------------

    def _whoami(self, params: dict, entry: dict):
        self._require_token()
        return self._ok({"type": "user", "name": self.server_state.user, "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    def _create(self, params: dict, entry: dict):
        self._require_token()
        hub, body = self.server_state, self._json()
        namespace = body.get("organization") or hub.user
        if namespace != hub.user:
            raise _Reply(403, f"you cannot create repos in {namespace}")
        repo_id = f"{namespace}/{body['name']}"
        entry["repo"] = repo_id
        url = f"{hub.url}/datasets/{repo_id}"
        with hub._lock:
            if repo_id in hub.repos:
                return self._ok({"error": "You already created this dataset repo", "url": url},
                                409)
            repo = Repo(repo_id, bool(body.get("private")) or body.get("visibility") == "private")
            hub.repos[repo_id] = repo
            hub._new_commit(repo, "initial commit",
                            {".gitattributes": Blob(GITATTRIBUTES, lfs=False)})
        return self._ok({"url": url, "name": repo_id})

    def _validate_yaml(self, params: dict, entry: dict):
        import yaml

        content = self._json().get("content", "")
        errors = []
        if content.startswith("---"):
            try:
                meta = yaml.safe_load(content.split("---", 2)[1])
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "metadata is not a mapping"})
            except yaml.YAMLError as exc:
                errors.append({"message": str(exc)})
        return self._ok({"errors": errors, "warnings": []}, 400 if errors else 200)

    def _info(self, params: dict, entry: dict):
        hub = self.server_state
        with hub._lock:
            repo = hub._repo(params["repo"], self._authorized())
            commit = hub._revision(repo, params.get("rev", "main"))
            return self._ok({
                "id": repo.id, "author": repo.id.split("/")[0], "sha": commit.oid,
                "private": repo.private, "disabled": False, "gated": False, "downloads": 0,
                "likes": 0, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            })

    def _preupload(self, params: dict, entry: dict):
        self._require_token()
        hub = self.server_state
        with hub._lock:
            repo = hub._repo(params["repo"], True)
            commit = hub._revision(repo, params["rev"])
            answers = []
            for f in self._json()["files"]:
                sample = base64.b64decode(f["sample"])
                lfs = hub.lfs and (f["path"].endswith(_BINARY_SUFFIXES) or b"\0" in sample
                                   or f["size"] > 10 * 1024 * 1024)
                existing = commit.files.get(f["path"])
                answers.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                                "shouldIgnore": False,
                                "oid": existing.oid if existing is not None else None})
        entry["paths"] = [a["path"] for a in answers]
        return self._ok({"files": answers})

    def _commit(self, params: dict, entry: dict):
        self._require_token()
        hub = self.server_state
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise _Reply(400, "the first line must be the header")
        header = lines[0]["value"]
        entry["parent"] = header.get("parentCommit")
        entry["added"] = [ln["value"]["path"] for ln in lines[1:]
                          if ln["key"] in ("file", "lfsFile")]
        entry["applied"] = False
        with hub._lock:
            repo = hub._repo(params["repo"], True)
            if unquote(params["rev"]) != "main":
                raise _Reply(400, "this server only commits to main")
            if header.get("parentCommit") and header["parentCommit"] != repo.head.oid:
                raise _Reply(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.head.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = Blob(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    data = hub.lfs_store.get(value["oid"])
                    if data is None:
                        raise _Reply(422, f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = Blob(data, lfs=True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: b for p, b in files.items() if not p.startswith(prefix)}
                else:
                    raise _Reply(400, f"unknown commit operation {key!r}")
            commit = hub._new_commit(repo, header.get("summary", ""), files)
            entry["applied"] = True
            entry["oid"] = commit.oid
        return self._ok({"commitUrl": f"{hub.url}/datasets/{repo.id}/commit/{commit.oid}",
                         "commitOid": commit.oid, "pullRequestUrl": None})

    def _race(self, repo_id: str) -> None:
        hub = self.server_state
        with hub._lock:
            repo = hub._repo(repo_id, True)
            files = dict(repo.head.files)
            files["someone-else.txt"] = Blob(f"edit {len(repo.commits)}".encode(), lfs=False)
            hub._new_commit(repo, "a concurrent commit", files)

    @staticmethod
    def _entry(path: str, blob: Blob | None) -> dict:
        if blob is None:
            return {"type": "directory", "path": path, "size": 0,
                    "oid": hashlib.sha1(path.encode()).hexdigest()}
        entry = {"type": "file", "path": path, "size": len(blob.data), "oid": blob.git_oid}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": 134}
        return entry

    def _entries(self, files: dict[str, Blob], prefix: str, recursive: bool) -> list[dict]:
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        out, folders = [], set()
        for path in sorted(files):
            if not path.startswith(base):
                continue
            rest = path[len(base):].split("/")
            for depth in range(1, len(rest)):
                if recursive or depth == 1:
                    folders.add(base + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                out.append(self._entry(path, files[path]))
        return [self._entry(f, None) for f in sorted(folders)] + out

    def _tree(self, params: dict, entry: dict):
        hub = self.server_state
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        with hub._lock:
            repo = hub._repo(params["repo"], self._authorized())
            commit = hub._revision(repo, params["rev"])
            path = params.get("path", "").strip("/")
            if path and path not in commit.files and not any(
                    p.startswith(path + "/") for p in commit.files):
                raise _Reply(404, f"{path} does not exist", "EntryNotFound")
            return self._ok(self._entries(commit.files, path, recursive))

    def _paths_info(self, params: dict, entry: dict):
        hub = self.server_state
        if "json" in self.headers.get("Content-Type", ""):
            paths = self._json().get("paths", [])
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        with hub._lock:
            repo = hub._repo(params["repo"], self._authorized())
            commit = hub._revision(repo, params["rev"])
            out = []
            for path in paths:
                path = path.strip("/")
                if path in commit.files:
                    out.append(self._entry(path, commit.files[path]))
                elif any(p.startswith(path + "/") for p in commit.files):
                    out.append(self._entry(path, None))
            return self._ok(out)

    def _resolve(self, params: dict, entry: dict):
        hub = self.server_state
        with hub._lock:
            repo = hub._repo(params["repo"], self._authorized())
            commit = hub._revision(repo, params["rev"])
            blob = commit.files.get(params["path"])
        if blob is None:
            raise _Reply(404, f"{params['path']} does not exist", "EntryNotFound")
        data, status = blob.data, 200
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": commit.oid,
                   "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(len(blob.data))
        wanted = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if wanted:
            size = len(data)
            start, end = wanted.groups()
            first = int(start) if start else max(0, size - int(end))
            last = min(int(end), size - 1) if start and end else size - 1
            if first >= size:
                raise _Reply(416, "range not satisfiable")
            data, status = data[first:last + 1], 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        entry["bytes"] = len(data)
        return status, headers, data

    def _lfs_batch(self, params: dict, entry: dict):
        self._require_token()
        hub = self.server_state
        with hub._lock:
            hub._repo(params["repo"], True)
            objects = []
            for obj in self._json().get("objects", []):
                answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in hub.lfs_store:
                    href = f"{hub.url}/lfs-upload/{quote(obj['oid'])}"
                    answer["actions"] = {"upload": {"href": href, "expires_in": 3600}}
                objects.append(answer)
        entry["oids"] = [o["oid"] for o in objects if "actions" in o]
        return 200, {"Content-Type": "application/vnd.git-lfs+json"}, json.dumps(
            {"transfer": "basic", "objects": objects}).encode()

    def _lfs_put(self, params: dict, entry: dict):
        if hashlib.sha256(self.body).hexdigest() != params["oid"]:
            raise _Reply(400, "content does not match its oid")
        with self.server_state._lock:
            self.server_state.lfs_store[params["oid"]] = self.body
        entry["oid"], entry["bytes"] = params["oid"], len(self.body)
        return 200, {}, b""
