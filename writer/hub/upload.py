"""Publishing a local dataset to a Hub repo, incrementally and exactly once.

One pass (`publish`) reads the repo's head and file list, then commits what is missing in batches:
each sealed Arrow shard `data/<stem>.arrow` becomes `data/<stem>.parquet` (zstd, with the
`datasets` features in its schema), riding with the regenerated card (README.md),
`meta/info.json` and the files of the sessions concerned. Every commit names the head it was
built on (`parentCommit`): if anyone committed since, the Hub answers 412 and the pass reads the
repo again. The repo's file list is the truth: a shard whose Parquet is there is never sent again,
even when the confirmation of its commit was lost to a crash or a dropped connection.

The card and `meta/info.json` describe the repo as it is after the commit: every session file in
it (other machines' and earlier folders' too, read at the head the commit builds on), each with
the counts of its published shards (`published` in the Hub copy of a session file, written in
the same commit as its shards). Two writers publishing to one repo at once: whichever commits
second was refused (412), read the repo again and counted the other's sessions.

The journal (`.meta/uploads.json`, written atomically after each confirmed commit) records per repo
which shards were published in which commit, with their counts for the card. Parquet files are
staged under `.upload/` (hidden from `load_dataset` on the folder) and removed once published.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from shared.errors import GymrecError
from shared.layout import HUB_SESSIONS_DIR, DatasetLayout, ShardName
from writer.hub.card import Published, card_text, hub_info
from writer.hub.client import HubClient, PublishError, Snapshot, StaleParent, Transient
from writer.store.card import card_extras, with_statistics
from writer.store.durable import checksum_matches, fsync_dir, read_json, write_json_atomic
from writer.store.shards import load_manifest
from writer.summary.card_parts import PREVIEW_NAME

log = logging.getLogger("gymrec.writer")

FILES_PER_COMMIT = 50  # data files; with the card and session files well under the Hub's ~100
PARQUET_ROW_GROUP = 100  # rows: what `datasets` uses for image datasets (streaming, the viewer)


class DamagedShard(GymrecError):
    """A local shard does not match its manifest checksum: nothing is published until
    `gymrec-writer verify ENV --repair` has moved it aside (exit code 1, as for `verify`)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a pass waits out failures: `attempts` tries in a row, `base` seconds doubling up to
    `cap`, or as long as the Hub's Retry-After says (up to `max_retry_after`)."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 900.0
    stale_attempts: int = 10

    def delay(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return min(self.cap, self.base * 2 ** (failures - 1))


@dataclass
class PublishReport:
    repo_id: str
    commits: list[str] = field(default_factory=list)
    shards: int = 0
    rows: int = 0
    bytes: int = 0
    recovered: int = 0  # shards found on the Hub whose confirmation had been lost
    skipped: list[str] = field(default_factory=list)  # shards that failed their checksum
    seconds: float = 0.0


def parquet_path(shard_file: str) -> str:
    """`data/<stem>.arrow` → `data/<stem>.parquet`."""
    return shard_file.rsplit(".", 1)[0] + ".parquet"


def _canonical_json(value: object) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


# -- journal ----------------------------------------------------------------------------------


def journal_path(layout: DatasetLayout) -> Path:
    return layout.meta / "uploads.json"


def load_journal(layout: DatasetLayout) -> dict:
    return read_json(journal_path(layout), {"version": 1, "repos": {}})


def _repo_journal(journal: dict, repo_id: str) -> dict:
    return journal["repos"].setdefault(repo_id, {"shards": {}, "meta": {}})


@contextmanager
def _upload_lock(layout: DatasetLayout):
    """One publishing pass per dataset at a time (a daemon and a one-shot push may overlap)."""
    layout.meta.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.meta / "uploads.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise Transient(f"another upload of {layout.root.name} is running") from exc
        yield
    finally:
        os.close(fd)


# -- staging ----------------------------------------------------------------------------------


def _shard_stats(table: pa.Table) -> dict:
    last = table.column("is_last")
    episodes = pc.sum(pc.cast(last, pa.int64())).as_py() or 0
    return {"rows": table.num_rows, "episodes": episodes, "frames": table.num_rows - episodes}


def stage_parquet(layout: DatasetLayout, shard: dict) -> tuple[Path, dict]:
    """The Parquet of a sealed shard under `.upload/` (made once, atomically; reused after a
    crash) and its counts. Raises PublishError if the shard does not match its checksum."""
    import pyarrow.parquet as pq

    staging = layout.root / ".upload"
    target = staging / Path(parquet_path(shard["file"])).name
    if target.exists():
        table = pq.read_table(target, columns=["is_last"])
        return target, {**_shard_stats(table), "rows": pq.ParquetFile(target).metadata.num_rows}
    source = layout.root / shard["file"]
    if not checksum_matches(source, shard):
        raise PublishError(f"{shard['file']} does not match its manifest checksum: not published")
    with pa.memory_map(str(source)) as stream:
        table = ipc.open_stream(stream).read_all()
    staging.mkdir(exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    # The schema's metadata carries the `datasets` features: `image` decodes as Image().
    pq.write_table(table, tmp, compression="zstd", row_group_size=PARQUET_ROW_GROUP)
    os.replace(tmp, target)
    fsync_dir(staging)
    return target, _shard_stats(table)


def _check_unpublished(layout: DatasetLayout, repo_id: str) -> None:
    """Raise DamagedShard if a shard not yet published to `repo_id` fails its checksum."""
    published = _repo_journal(load_journal(layout), repo_id)["shards"]
    for shard in load_manifest(layout)["shards"]:
        if shard["file"] in published:
            continue
        path = layout.root / shard["file"]
        if not path.is_file() or not checksum_matches(path, shard):
            raise DamagedShard(f"{shard['file']} of {layout.root.name} does not match its "
                               "manifest checksum; nothing published (`gymrec-writer verify "
                               f"{layout.root.name} --repair` moves it to .corrupt/)")


def _clean_staging(layout: DatasetLayout, keep: set[str]) -> None:
    staging = layout.root / ".upload"
    if staging.is_dir():
        for path in staging.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)


# -- metadata ---------------------------------------------------------------------------------


def _sessions(layout: DatasetLayout, ids: set[str]) -> list[dict]:
    states = []
    for sid in sorted(ids):
        state = read_json(layout.session_file(sid))
        if state is not None:
            states.append(state)
    return sorted(states, key=lambda s: (s["start"]["started_at"], s["start"]["session"]))


_COUNTS = ("shards", "rows", "frames", "episodes")


def _session_counts(entries: list[dict]) -> dict[str, dict]:
    """Session id → counts over its published shards (`entries`: journal entries)."""
    counts: dict[str, dict] = {}
    for e in entries:
        c = counts.setdefault(e["session_id"], dict.fromkeys(_COUNTS, 0))
        c["shards"] += 1
        for key in ("rows", "frames", "episodes"):
            c[key] += e[key]
    return counts


def _counts_of(state: dict, shards_listed: int) -> dict:
    """A session's published counts, as its Hub file says; a file written before they were
    recorded: its episodes (rows = steps + final rows) and the shards the repo lists."""
    if isinstance(state.get("published"), dict):
        return {k: int(state["published"].get(k, 0)) for k in _COUNTS}
    episodes = [e for e in state.get("episodes", []) if isinstance(e, dict)]
    frames = sum(int(e.get("steps", 0)) for e in episodes)
    return {"shards": shards_listed, "rows": frames + len(episodes), "frames": frames,
            "episodes": len(episodes)}


def _published(sessions: list[dict]) -> Published:
    """Counts over `sessions` (Hub session files, each with `published`)."""
    total = {k: sum(s["published"][k] for s in sessions) for k in _COUNTS}
    play = sum(s["published"]["frames"] / (float(s["start"].get("fps") or 0) or 1.0)
               for s in sessions)
    return Published(**total, play_seconds=play)


def remote_sessions(client: HubClient, repo_id: str, snapshot: Snapshot,
                    ours: set[str]) -> list[dict]:
    """The session files at `snapshot` of sessions not in `ours` (another machine's, an
    earlier folder's), each with its published counts. Unreadable ones are left out (logged)."""
    shards = Counter(name.session for path in snapshot.files
                     if path.startswith("data/") and (name := ShardName.parse(path)))
    found = []
    for path in sorted(snapshot.files):
        sid = path.removeprefix(HUB_SESSIONS_DIR).removesuffix(".json")
        if not path.startswith(HUB_SESSIONS_DIR) or not path.endswith(".json") or sid in ours:
            continue
        try:
            state = json.loads(client.read_file(repo_id, path, snapshot.head))
            if not isinstance(state.get("start"), dict) or "session" not in state["start"]:
                raise ValueError("no start message")
        except (ValueError, AttributeError) as exc:
            log.warning("%s: %s is not a session file (%s); not counted", repo_id, path, exc)
            continue
        found.append({**state, "published": _counts_of(state, shards[sid])})
    return found


def metadata_files(layout: DatasetLayout, repo_id: str, entries: list[dict],
                   others: list[dict] = ()) -> dict[str, bytes]:
    """README.md, meta/info.json and meta/sessions/<id>.json for the published `entries` of
    this folder, the card and info counting `others` too (the repo's other session files)."""
    counts = _session_counts(entries)
    ours = with_statistics(layout, [{**s, "published": counts[s["start"]["session"]]}
                                    for s in _sessions(layout, set(counts))])
    if not ours:
        return {}
    sessions = sorted([*ours, *others],
                      key=lambda s: (s["start"].get("started_at", 0), s["start"]["session"]))
    published = _published(sessions)
    extras = card_extras(layout, sessions)
    files = {
        "README.md": card_text(repo_id, sessions, published, extras).encode(),
        "meta/info.json": _canonical_json(hub_info(sessions, published, extras)),
    }
    if extras.preview is not None:
        files[PREVIEW_NAME] = extras.preview
    for s in ours:
        files[f"meta/sessions/{s['start']['session']}.json"] = _canonical_json(s)
    return files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- one pass ---------------------------------------------------------------------------------


def publish(layout: DatasetLayout, client: HubClient, repo_id: str, *,
            files_per_commit: int = FILES_PER_COMMIT, retry: RetryPolicy = RetryPolicy(),
            metadata_only: str = "always", sleep: Callable[[float], None] = time.sleep,
            on_commit: Callable[[str, int, int], None] | None = None) -> PublishReport:
    """Send every sealed shard of `layout` that `repo_id` lacks, then stop. `metadata_only`:
    "always" commits changed metadata alone too; "final" only when a session it concerns has
    finished (a daemon's follow-up pass: no commit per episode). Raises PublishError, or
    Transient when the Hub stayed unavailable for `retry.attempts` tries."""
    report = PublishReport(repo_id)
    started = time.monotonic()
    with _upload_lock(layout):
        _check_unpublished(layout, repo_id)  # before the Hub is touched: no empty repo
        client.ensure_repo(repo_id)
        failures = stale = 0
        while True:
            try:
                if not _one_commit(layout, client, repo_id, report, files_per_commit,
                                   metadata_only, on_commit):
                    break
                failures = stale = 0
            except StaleParent as exc:
                stale += 1
                log.info("%s; reading the repo again", exc)
                if stale >= retry.stale_attempts:
                    raise Transient(f"{exc} {stale} times in a row") from exc
            except (Transient, OSError) as exc:  # OSError: local disk trouble while staging
                failures += 1
                if failures >= retry.attempts:
                    if isinstance(exc, OSError):
                        raise Transient(f"{layout.root.name}: {exc}") from exc
                    raise
                wait = retry.delay(failures, getattr(exc, "retry_after", None))
                log.warning("%s; retrying in %.1f s", exc, wait)
                sleep(wait)
    report.seconds = time.monotonic() - started
    return report


def _one_commit(layout: DatasetLayout, client: HubClient, repo_id: str, report: PublishReport,
                files_per_commit: int, metadata_only: str,
                on_commit: Callable[[str, int, int], None] | None) -> bool:
    """Read the repo, commit the next batch; False when there was nothing left to send."""
    snapshot = client.snapshot(repo_id)
    journal = load_journal(layout)
    mine = _repo_journal(journal, repo_id)
    shards = load_manifest(layout)["shards"]
    adopted = _adopt_remote(layout, mine, shards, snapshot.files, snapshot.head)
    if adopted:
        report.recovered += adopted
        write_json_atomic(journal_path(layout), journal)
    pending = [s for s in shards if parquet_path(s["file"]) not in snapshot.files
               and s["file"] not in report.skipped]
    _clean_staging(layout, {Path(parquet_path(s["file"])).name for s in pending})

    batch: dict[str, tuple[Path, dict]] = {}
    for shard in pending[:files_per_commit]:
        try:
            path, stats = stage_parquet(layout, shard)
        except PublishError as exc:
            log.error("%s", exc)
            report.skipped.append(shard["file"])
            continue
        batch[shard["file"]] = (path, {**stats, "session_id": shard["session_id"],
                                       "parquet_bytes": path.stat().st_size})
    published = [e for f, e in mine["shards"].items() if e["parquet"] in snapshot.files]
    entries = published + [stats for _, stats in batch.values()]
    others = remote_sessions(client, repo_id, snapshot, {e["session_id"] for e in entries})
    meta = {p: b for p, b in metadata_files(layout, repo_id, entries, others).items()
            if p not in snapshot.files or mine["meta"].get(p) != _sha(b)}
    if not batch and not _worth_a_commit(meta, metadata_only):
        return False

    files: dict[str, Path | bytes] = {parquet_path(f): path for f, (path, _) in batch.items()}
    files.update(meta)
    rows = sum(stats["rows"] for _, stats in batch.values())
    message = (f"gymrec: add {len(batch)} shard(s), {rows} rows" if batch
               else "gymrec: update dataset card and session metadata")
    oid = client.commit(repo_id, files, snapshot.head, message)

    # Confirmed: only now does the journal say so.
    for shard_file, (path, stats) in batch.items():
        mine["shards"][shard_file] = {"parquet": parquet_path(shard_file), "commit": oid, **stats}
        path.unlink(missing_ok=True)
    mine["meta"].update({p: _sha(b) for p, b in meta.items()})
    write_json_atomic(journal_path(layout), journal)
    if oid == snapshot.head:
        return True  # the Hub had all of it already (the client skips unchanged files)
    report.commits.append(oid)
    report.shards += len(batch)
    report.rows += rows
    report.bytes += sum(stats["parquet_bytes"] for _, stats in batch.values())
    log.info("%s: commit %s: %d shard(s), %d rows, %d metadata file(s)", repo_id, oid[:10],
             len(batch), rows, len(meta))
    if on_commit is not None:
        on_commit(oid, len(batch), rows)
    return True


def _worth_a_commit(meta: dict[str, bytes], metadata_only: str) -> bool:
    if not meta:
        return False
    if metadata_only == "always":
        return True
    # "final": a session's file changed to a finished state (its last episodes, its status).
    return any(json.loads(b).get("status") != "recording" for p, b in meta.items()
               if p.startswith("meta/sessions/"))


def _adopt_remote(layout: DatasetLayout, mine: dict, shards: list[dict], remote: frozenset[str],
                  head: str) -> int:
    """Shards on the Hub that the journal does not know (a commit whose confirmation was lost):
    record them, with counts from the local shard. Returns how many."""
    adopted = 0
    for shard in shards:
        if shard["file"] in mine["shards"] or parquet_path(shard["file"]) not in remote:
            continue
        source = layout.root / shard["file"]
        stats = {"rows": shard["rows"], "episodes": 0, "frames": shard["rows"]}
        if source.exists():
            with pa.memory_map(str(source)) as stream:
                stats = _shard_stats(ipc.open_stream(stream).read_all())
        staged = layout.root / ".upload" / Path(parquet_path(shard["file"])).name
        mine["shards"][shard["file"]] = {
            "parquet": parquet_path(shard["file"]), "commit": head, "session_id":
            shard["session_id"], "parquet_bytes": staged.stat().st_size if staged.exists() else 0,
            "found_on_hub": True, **stats,
        }
        adopted += 1
    if adopted:
        log.warning("%d shard(s) were already on the Hub (their commit's confirmation was lost);"
                    " recorded, not sent again", adopted)
    return adopted


def report_line(report: PublishReport, endpoint: str) -> str:
    """One line for people: what this run sent where."""
    url = f"{endpoint}/datasets/{report.repo_id}"
    already = (f"{report.recovered} shard(s) were already there (their commit's confirmation "
               "had been lost)") if report.recovered else ""
    if not report.commits:
        return f"{already or 'nothing new to publish'}; {url} is up to date"
    rate = report.bytes / 1e6 / report.seconds if report.seconds else 0.0
    line = (f"published {report.shards} shard(s), {report.rows} rows, "
            f"{report.bytes / 1e6:.1f} MB in {len(report.commits)} commit(s) "
            f"({report.seconds:.1f} s, {rate:.1f} MB/s) to {url}")
    return f"{line}; {already}" if already else line
