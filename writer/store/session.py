"""One recording session inside the writer: accepts its messages strictly in seq order, turns
them into rows as their frames finish encoding, and writes them durably in batches.

`durable_seq` is the highest seq whose effect is on disk; it only moves after an fsync, and it is
what the writer acknowledges. Control messages (gap, episode end, session end) flush the rows
before them, so the session file never claims more than the shards hold.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from shared import protocol as p
from shared.layout import DatasetLayout, ShardName
from shared.schema import (
    arrow_schema,
    batch_columns,
    columns_to_batch,
    episode_id,
    final_row,
    row_columns,
    step_row,
)
from shared.security import token_digest
from shared.shm import RingReader
from writer.encode import Encoded, FrameEncoder
from writer.store.card import has_preview, write_card
from writer.store.durable import write_json_atomic
from writer.store.metadata import (
    add_missing_episodes,
    episode_entry,
    new_state,
    read_json_or_quarantine,
    session_rows,
)
from writer.store.shards import ShardInfo, ShardWriter, load_manifest, recover

log = logging.getLogger("gymrec.writer")

EPISODES_SAVE_SECONDS = 1.0  # how stale the session file's episode list may get (see below)


class WriterSession:
    """State of one session; `pump()` moves encoded frames to disk."""

    def __init__(self, start: p.SessionStart, layout: DatasetLayout, batch_rows: int,
                 batch_seconds: float, shard_rows: int, shard_bytes: int,
                 on_sealed: Callable[[DatasetLayout, ShardInfo], None] | None = None):
        self.start = start
        self.id = start.session
        self.layout = layout
        self.schema = arrow_schema(start.action_space, start.info_columns, start.extras)
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.shard_rows = shard_rows
        self.shard_bytes = shard_bytes
        self.on_sealed = on_sealed
        self.pending: deque[_Pending] = deque()
        self.rows = _Rows()  # buffered for the next batch, column by column
        self.first_row_at = 0.0
        self.shard: ShardWriter | None = None
        self.routing_id: bytes = b""
        self.last_seen = time.monotonic()
        self.last_resend_request = 0.0
        self.last_dup_ack = 0.0
        self.ended = False
        self.pending_bytes = 0
        self.pending_frames = 0
        self.ring: RingReader | None = None
        if start.shm_slots:
            self.ring = RingReader(start.session, start.shm_slots, math.prod(start.frame_shape),
                                   start.owner_token)
        self.encoder = FrameEncoder(start.frame_shape, start.codec, start.quality, start.extras)
        self.needs_repair = False  # a seal failed half-way: finish it before writing more
        self.retry_at = 0.0  # after a failed write, when to try again (monotonic seconds)
        self._ending: dict[int, dict] = {}  # seq of a buffered final row → its episode entry
        self._episodes_unsaved = False  # durable episodes the session file does not list yet
        self._saved_at = 0.0
        self.state = self._load_or_create_state()
        self.durable_seq = max(self.state["last_control_seq"], self._last_row_seq())
        self.next_seq = self.durable_seq + 1
        self.shard_index = self._next_shard_index()

    # -- state on disk ------------------------------------------------------------------------

    def _load_or_create_state(self) -> dict:
        """The session file, checked against the shards: episodes whose final row is on disk
        but missing from the file (a kill between the two writes) are added; a damaged file is
        moved aside and rebuilt from the shards."""
        path = self.layout.session_file(self.id)
        loaded = read_json_or_quarantine(self.layout, path)
        state = {**new_state(public_start(self.start)), **(loaded or {})}
        if state.pop("rebuilt_from_shards", False) or state["start"] is None:
            state["start"] = public_start(self.start)  # the real one, not the start-up's guess
        state.setdefault("owner", owner_digest(self.start))
        final, _ = session_rows(self.layout, self.id)
        added = add_missing_episodes(state, final)
        if loaded is None or added:
            state["steps_written"] = sum(s["rows"] for s in load_manifest(self.layout)["shards"]
                                         if s["session_id"] == self.id)
        if state["status"] != "ended":
            state["status"] = "recording"
        if state != loaded:
            write_json_atomic(path, state)
            write_card(self.layout, state["start"], make_preview=False)  # no new frames yet
        return state

    def _save_state(self) -> None:
        write_json_atomic(self.layout.session_file(self.id), self.state)
        self._episodes_unsaved = False
        self._saved_at = time.monotonic()

    def _save_episodes(self, at_once: bool = False) -> None:
        """Record the episodes whose final rows just became durable: every one buffered, since
        a flush writes all buffered rows. The file is rewritten at most every
        EPISODES_SAVE_SECONDS (`at_once`: now): it holds every episode of the session, so a
        rewrite per episode made a long session's cost grow with the square of its episodes.
        Their shards vouch for them meanwhile: episodes missing from the file are added from
        the final rows at the next start, with the outcome the recorder gave."""
        if self._ending:
            self.state["episodes"].extend(self._ending.values())
            self._ending.clear()
            self._episodes_unsaved = True
        if not self._episodes_unsaved or (
                not at_once and time.monotonic() - self._saved_at < EPISODES_SAVE_SECONDS):
            return
        try:
            self._save_state()
        except OSError as exc:
            log.warning("session %s: episode list not saved yet: %s", self.id, exc)

    def _last_row_seq(self) -> int:
        seqs = [s["last_seq"] for s in load_manifest(self.layout)["shards"]
                if s["session_id"] == self.id]
        return max(seqs, default=0)

    def _next_shard_index(self) -> int:
        shards = self.layout.shards_of(self.layout.data, self.id)
        return 1 + (ShardName.parse(shards[-1].name).index if shards else 0)

    # -- messages -----------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        """The digest of the owner token ("" for a session started without one)."""
        return self.state.get("owner", "")

    def accept(self, seq: int, msg: object, encoded: Future | None, skip: int = 0,
               nbytes: int | None = None) -> None:
        """Queue a message that continues at next_seq (the caller checks the order). A
        StepBatch may start before next_seq: its first `skip` steps are already here.
        `nbytes`: its pixels' size when they are not in the message (shared memory)."""
        nbytes = _pixel_bytes(msg) if nbytes is None else nbytes
        self.pending.append(_Pending(seq, msg, encoded, skip, nbytes))
        self.pending_bytes += nbytes
        self.pending_frames += _frames(msg) - skip
        self.next_seq = seq + (msg.count if isinstance(msg, p.StepBatch) else 1)

    def pump(self, now: float) -> bool:
        """Move finished work to disk. Returns True when `durable_seq` advanced."""
        before = self.durable_seq
        while self.pending and self.pending[0].ready:
            item = self.pending[0]
            if isinstance(item.msg, p.EpisodeEnd) and item.msg.outcome == "discarded":
                self.flush()
                self._discard_episode(item.seq, item.msg)
            elif isinstance(item.msg, p.StepBatch):
                encoded = item.encoded.result()
                while item.done < item.msg.count:  # resumable: a failed flush retries here
                    if self.rows.count >= self.batch_rows:
                        self.flush()
                    take = min(item.msg.count - item.done, self.batch_rows - self.rows.count)
                    # `encoded` holds the steps from `skip` on (the rest were here already)
                    at = item.done - item.skip
                    self._add_batch_rows(item.seq, item.msg, item.done, encoded[at:at + take])
                    item.done += take
            elif item.encoded is not None:
                if self.rows.count >= self.batch_rows:
                    self.flush()
                if not item.done:  # resumable: the row is added once, the flush retried
                    self._add_row(item.seq, item.msg, item.encoded.result())
                    item.done = 1
                if isinstance(item.msg, p.EpisodeEnd):
                    self.flush()  # a batch ends with the episode, so a shard can end there
            else:
                self.flush()
                self._apply_control(item.seq, item.msg)
            self.pending.popleft()  # only once its effect is kept: a failed write retries it
            self.pending_bytes -= item.nbytes
            self.pending_frames -= _frames(item.msg) - item.skip
        if self.rows.count and (self.rows.count >= self.batch_rows
                                or now - self.first_row_at >= self.batch_seconds):
            self.flush()
        if self._episodes_unsaved:
            self._save_episodes()
        return self.durable_seq > before

    def _add_batch_rows(self, seq: int, batch: p.StepBatch, first: int,
                        encoded: list[Encoded]) -> None:
        """Steps `first`, `first` + 1, ... of a batch starting at `seq`, one per `encoded`."""
        extras = [e.extras for e in encoded] if self.start.extras else None
        self._append_columns(batch_columns(self.id, seq, batch, first,
                                           [e.image for e in encoded],
                                           [e.frame_hash for e in encoded], extras))

    def _append_columns(self, columns: dict[str, list]) -> None:
        if not self.rows.count:
            self.first_row_at = time.monotonic()
        self.rows.extend(columns)

    def _add_row(self, seq: int, msg: p.Step | p.EpisodeEnd, encoded: Encoded) -> None:
        last = isinstance(msg, p.EpisodeEnd)
        image, frame_hash, extras = encoded  # extras: its extra columns (`--record`)
        row = (final_row(self.id, seq, msg, image, self.start.action_space, frame_hash, extras)
               if last else step_row(self.id, seq, msg, image, frame_hash, extras))
        self._append_columns(row_columns(row))
        if last:  # saved in the session file once the row is durable
            self._ending[seq] = episode_entry(row, msg.outcome)

    def _discard_episode(self, seq: int, msg: p.EpisodeEnd) -> None:
        """The player threw this episode away: its rows leave the dataset when its shard is
        sealed (they are kept under `.discarded/`)."""
        eid = episode_id(self.id, msg.episode)
        if eid not in self.state["discarded"]:
            self.state["discarded"].append(eid)
            self.state["episodes"].append({
                "episode_id": eid, "episode_index": msg.episode, "seed": msg.seed,
                "steps": msg.step, "outcome": "discarded", "terminated": msg.terminated,
                "truncated": msg.truncated,
            })
        self.state["last_control_seq"] = seq
        self._save_state()
        self.durable_seq = seq
        self._maybe_rotate(episode_boundary=True)

    def flush(self) -> None:
        """Write the buffered rows as one batch and fsync; then they count as durable."""
        if not self.rows.count:
            return
        if self.needs_repair:
            self._repair()
        if self.shard is None:
            self.shard = ShardWriter(
                self.layout, self.layout.shard_name(self.id, self.shard_index), self.schema
            )
            self.shard_index += 1
        rows = self.rows
        seqs = rows.columns["seq"]
        batch = columns_to_batch(rows.columns, self.schema)
        try:
            self.shard.append(batch, seqs[0], seqs[-1])
        except OSError:
            self.seal()  # the shard is cut back to its last good batch; the rows stay buffered
            raise
        self.durable_seq = seqs[-1]
        self.state["steps_written"] += rows.count
        at_boundary = rows.columns["is_last"][-1]
        self._save_episodes()
        rows.clear()
        self._maybe_rotate(at_boundary)

    def _maybe_rotate(self, episode_boundary: bool) -> None:
        """Shards end at episode boundaries once they hold `shard_rows` (so a discarded episode
        sits in one open shard); `shard_bytes` is a hard cap for very long episodes."""
        if self.shard is None:
            return
        if (episode_boundary and self.shard.rows >= self.shard_rows) or (
                self.shard.bytes_written >= self.shard_bytes):
            self.seal()

    def _apply_control(self, seq: int, msg: object) -> None:
        if isinstance(msg, p.Gap) and all(g["seq"] != seq for g in self.state["gaps"]):
            self.state["gaps"].append({k: v for k, v in asdict(msg).items() if k != "session"})
        elif isinstance(msg, p.SessionEnd):
            self.seal(card=False)  # written below, once the file says "ended"
            self.state["status"] = "ended"
            self.state["end"] = {k: v for k, v in asdict(msg).items() if k != "session"}
            self.ended = True
        self.state["last_control_seq"] = seq
        self._save_state()
        if self.ended:  # its preview, if the dataset has none yet, once the end is acknowledged
            write_card(self.layout, self.state["start"], make_preview=False)
        self.durable_seq = seq

    def seal(self, card: bool = True) -> ShardInfo | None:
        """Seal the open shard, then rewrite the card (`card`: a caller about to write it
        anyway says False; the card reads every shard's statistics)."""
        shard, self.shard = self.shard, None
        if shard is None:
            return None
        try:
            info = shard.seal(frozenset(self.state["discarded"]))
        except OSError:
            self.needs_repair = True
            raise
        self._save_episodes(at_once=True)  # the card and an upload read the session file
        self._after_seal(info, card)
        return info

    def _repair(self) -> None:
        """Finish seals that failed (disk full): this session's leftover open shards and shards
        missing from the manifest. Raises OSError while the disk still refuses."""
        for info in recover(self.layout, lambda _: frozenset(self.state["discarded"]), self.id):
            self._after_seal(info)
        self.needs_repair = False

    def _after_seal(self, info: ShardInfo | None, card: bool = True) -> None:
        if info is not None:
            if card:
                try:
                    write_card(self.layout, self.state["start"])
                except OSError:
                    pass  # derived from the manifest; rewritten at the next seal
            if self.on_sealed is not None:
                self.on_sealed(self.layout, info)

    def finish_card(self) -> None:
        """After its end is acknowledged: the dataset's preview if it has none yet (~0.1 s that
        the recorder does not wait for), and the card again to show it."""
        if not has_preview(self.layout):
            try:
                write_card(self.layout, self.state["start"])
            except OSError as exc:
                log.warning("session %s: no preview: %s", self.id, exc)

    def close(self, status: str) -> None:
        """Flush, seal and record `status` (e.g. "aborted" after a timeout, "interrupted")."""
        self.flush()
        self.seal()
        if not self.ended:
            self.state["status"] = status
            self._save_state()
        self.release_ring(unlink=status == "aborted")

    def fail(self) -> None:
        """Give up after a fault in handling this session: what is durable stays (its shard
        sealed), rows not yet written are dropped (never acknowledged), the file says "failed".
        Raises nothing: the writer goes on with its other sessions."""
        self.pending.clear()
        self.rows.clear()
        self.pending_bytes = self.pending_frames = 0
        for step in (self.seal, self._mark_failed, lambda: self.release_ring(unlink=False)):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.error("session %s: while giving up: %s: %s", self.id,
                          type(exc).__name__, exc)

    def _mark_failed(self) -> None:
        self.state["status"] = "failed"
        self._save_state()

    def release_ring(self, unlink: bool) -> None:
        """Unmap the recorder's pixel ring; `unlink` when its recorder is gone for good."""
        if self.ring is not None:
            self.ring.close(unlink)
            self.ring = None

    def wait_encoded(self) -> None:
        for item in self.pending:
            if item.encoded is not None:
                item.encoded.exception()

    @property
    def dataset_root(self) -> Path:
        return self.layout.root


def public_start(start: p.SessionStart) -> dict:
    """The SessionStart as the session file keeps it: everything but the owner's secret."""
    return {k: v for k, v in asdict(start).items() if k != "owner_token"}


def owner_digest(start: p.SessionStart) -> str:
    """What the session file keeps of the owner token ("" when the recorder sent none)."""
    return token_digest(start.owner_token) if start.owner_token else ""


def stored_session(layout: DatasetLayout, session_id: str) -> dict | None:
    """A session's file as far as resuming it needs (status, owner, last control seq); None
    when there is none. A damaged file counts as one without an owner."""
    path = layout.session_file(session_id)
    if not path.exists() and not path.is_symlink():
        return None
    state = read_json_or_quarantine(layout, path) or {}
    seq = state.get("last_control_seq")
    return {"status": state.get("status"), "owner": state.get("owner") or "",
            "last_control_seq": seq if type(seq) is int and 0 <= seq < 2**63 else 0}


# Sessions whose file says this are over for good: never reopened.
_FINAL = ("ended", "failed")


def resume_refusal(stored: dict, start: p.SessionStart) -> str:
    """Why `start` may not take up the stored session ("ended": its end is durable, answer with
    an ack), or "" when it may: only its owner, and never once it ended or failed."""
    if not stored["owner"] or owner_digest(start) != stored["owner"]:
        return "this session belongs to another recorder (its owner token differs)"
    if stored["status"] == "ended":
        return "ended"
    if stored["status"] in _FINAL:
        return f"this session {stored['status']} and cannot be reopened"
    return ""


def dataset_mismatch(layout: DatasetLayout, start: p.SessionStart,
                     open_starts: list[p.SessionStart]) -> str:
    """Why a new session cannot join the dataset in `layout` (its rows would not load beside
    the others'), or "": its action space and frame shape must be those of the sessions there
    (`open_starts`, or else a session file on disk), and so must its typed info columns (a
    session file without them was written before gymrec stored frame hashes and info)."""
    theirs = [{"action_space": s.action_space, "frame_shape": list(s.frame_shape),
               "info_columns": s.info_columns, "extras": s.extras} for s in open_starts[:1]]
    if not theirs and layout.sessions.is_dir():
        for path in sorted(layout.sessions.glob("*.json")):
            try:
                known = json.loads(path.read_text(encoding="utf-8"))["start"]
                theirs = [{"action_space": known["action_space"],
                           "frame_shape": list(known["frame_shape"]),
                           "info_columns": known.get("info_columns"),
                           "extras": known.get("extras") or {}}]
                break
            except (OSError, ValueError, KeyError, TypeError):
                continue
    if not theirs:
        return ""
    if theirs[0]["action_space"] != start.action_space:
        return (f"{layout.root.name} holds sessions with action space "
                f"{json.dumps(theirs[0]['action_space'])[:200]}, not "
                f"{json.dumps(start.action_space)[:200]}: record into another --data-dir")
    if theirs[0]["frame_shape"] != list(start.frame_shape):
        return (f"{layout.root.name} holds frames of shape {theirs[0]['frame_shape']}, not "
                f"{list(start.frame_shape)}: record into another --data-dir")
    if theirs[0]["info_columns"] is None:
        return (f"{layout.root.name} was recorded by an earlier gymrec (without the frame_hash "
                "and info columns): record into another --data-dir")
    if theirs[0]["info_columns"] != start.info_columns:
        return (f"{layout.root.name} holds sessions with info columns "
                f"{json.dumps(theirs[0]['info_columns'])[:200]}, not "
                f"{json.dumps(start.info_columns)[:200]}: record into another --data-dir")
    if theirs[0]["extras"] != start.extras:
        return (f"{layout.root.name} holds sessions recording extras "
                f"{json.dumps(theirs[0]['extras'])[:200]}, not "
                f"{json.dumps(start.extras)[:200]} (--record): record into another --data-dir")
    if _without_start_states(layout):
        return (f"{layout.root.name} was recorded by an earlier gymrec (without the start_state "
                "column): record into another --data-dir")
    return ""


def _without_start_states(layout: DatasetLayout) -> bool:
    """Whether the dataset's shards were written before the start_state column (one shard
    tells: the sessions of a dataset share their columns)."""
    for path in layout.shards_of(layout.data):
        try:
            with pa.OSFile(str(path)) as source:
                return "start_state" not in pa.ipc.open_stream(source).schema.names
        except (OSError, pa.ArrowException):
            continue
    return False


def discarded_episodes(layout: DatasetLayout, session_id: str) -> frozenset[str]:
    """The episode ids a session's file marks as discarded (for crash recovery)."""
    state = read_json_or_quarantine(layout, layout.session_file(session_id)) or {}
    return frozenset(state.get("discarded", []))


class _Rows:
    """Rows waiting to be written as one batch: a list per column (shared.schema's
    `batch_columns`), no dict per row."""

    __slots__ = ("columns", "count")

    def __init__(self):
        self.columns: dict[str, list] = {}
        self.count = 0

    def extend(self, columns: dict[str, list]) -> None:
        if not self.count:
            self.columns = {name: list(values) for name, values in columns.items()}
        else:
            for name, values in self.columns.items():
                values.extend(columns[name])
        self.count += len(columns["seq"])

    def clear(self) -> None:
        self.columns = {}
        self.count = 0


class _Pending:
    """A message waiting for its frames to be encoded and its rows to be written."""

    __slots__ = ("seq", "msg", "encoded", "skip", "done", "nbytes")

    def __init__(self, seq: int, msg: object, encoded: Future | None, skip: int, nbytes: int):
        self.seq, self.msg, self.encoded, self.skip, self.done = seq, msg, encoded, skip, skip
        self.nbytes = nbytes

    @property
    def ready(self) -> bool:
        return self.encoded is None or self.encoded.done()


def _frames(msg: object) -> int:
    if isinstance(msg, p.StepBatch):
        return msg.count
    return 1 if isinstance(msg, (p.Step, p.EpisodeEnd)) else 0


def _pixel_bytes(msg: object) -> int:
    pixels = getattr(msg, "pixels", None)
    if pixels is None:
        return 0
    return sum(len(px) for px in pixels) if isinstance(pixels, list) else len(pixels)
