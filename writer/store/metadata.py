"""Metadata that the shards can vouch for: damaged JSON is moved aside, episode entries are
rebuilt from the rows.

The shards hold every row, and each episode's final row (`is_last`) says its index, seed, step
count and how it ended, so a session file that lost episodes (a kill between a write and the
file's update) or was damaged can be put right from the data alone. Damaged files are moved to
`.meta/damaged/<name>.<unix time>` (kept for a look, never read again) with one log line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pyarrow as pa

from shared.layout import DatasetLayout
from writer.store.durable import fsync_dir

log = logging.getLogger("gymrec.writer")

# The columns of a final row that an episode entry is made of (never the image).
_EPISODE_COLUMNS = ("episode_id", "episode_index", "seed", "step", "terminated", "truncated",
                    "is_last", "seq")


def read_json_or_quarantine(layout: DatasetLayout, path: Path, default: object = None,
                            kind: type = dict) -> object:
    """The JSON value in `path`; `default` when it is missing. A file that is not valid JSON
    of `kind` is moved to `.meta/damaged/` (one warning) and `default` returned."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError, IsADirectoryError) as exc:
        quarantine_file(layout, path, f"not valid JSON ({exc.__class__.__name__})")
        return default
    if not isinstance(value, kind):
        quarantine_file(layout, path, f"holds a {type(value).__name__}, not a {kind.__name__}")
        return default
    return value


def quarantine_file(layout: DatasetLayout, path: Path, why: str,
                    then: str = "rebuilding it from the shards") -> Path:
    """Move a damaged file (or folder) out of the way, to `.meta/damaged/<name>.<time>`;
    `then` says what happens next, for the log line."""
    damaged = layout.meta / "damaged"
    damaged.mkdir(parents=True, exist_ok=True)
    target = damaged / f"{path.name}.{time.time():.6f}"
    os.replace(path, target)
    fsync_dir(path.parent)
    log.warning("%s is damaged (%s): moved to %s; %s", path, why, target, then)
    return target


def outcome_of(terminated: bool, truncated: bool) -> str:
    """How an episode ended, as far as its final row tells (an episode the recorder stopped
    early has neither flag: "aborted")."""
    return "terminated" if terminated else "truncated" if truncated else "aborted"


def episode_entry(row: dict, outcome: str | None = None) -> dict:
    """A session file's episode entry for the final row `row` of an episode."""
    return {
        "episode_id": row["episode_id"], "episode_index": row["episode_index"],
        "seed": row["seed"], "steps": row["step"],
        "outcome": outcome or outcome_of(row["terminated"], row["truncated"]),
        "terminated": row["terminated"], "truncated": row["truncated"],
    }


def final_rows(table: pa.Table) -> list[dict]:
    """The `is_last` rows of `table`, without images, in seq order."""
    import pyarrow.compute as pc  # ~60 ms to import: not on the way to a writer's start

    columns = [c for c in _EPISODE_COLUMNS if c in table.column_names]
    last = table.select(columns).filter(pc.equal(table.column("is_last"), True))
    return sorted(last.to_pylist(), key=lambda r: r["seq"])


def read_rows_summary(path: Path) -> tuple[list[dict], int]:
    """The final rows of one shard and its highest seq (0 if none). Memory-mapped: the image
    pages are never touched. Raises pa.ArrowException/OSError for a damaged shard."""
    import pyarrow.compute as pc

    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_stream(source).read_all()
        seqs = table.column("seq")
        last_seq = pc.max(seqs).as_py() if len(seqs) else 0
        return final_rows(table), last_seq or 0


def session_rows(layout: DatasetLayout, session_id: str) -> tuple[list[dict], int]:
    """Final rows and the highest seq over a session's sealed shards (`data/`); damaged shards
    are skipped (`gymrec-writer verify` reports them)."""
    rows: list[dict] = []
    last_seq = 0
    for path in layout.shards_of(layout.data, session_id):
        try:
            shard_rows, shard_last = read_rows_summary(path)
        except (pa.ArrowException, OSError) as exc:
            log.warning("%s: cannot read its rows (%s); run gymrec-writer verify", path.name,
                        exc)
            continue
        rows.extend(shard_rows)
        last_seq = max(last_seq, shard_last)
    return rows, last_seq


def add_missing_episodes(state: dict, final: list[dict]) -> int:
    """Add an entry for each final row whose episode `state` does not list; returns how many.
    Entries already there (with the recorder's own outcome) are kept as they are."""
    known = {e["episode_id"] for e in state["episodes"]}
    added = 0
    for row in final:
        if row["episode_id"] not in known:
            state["episodes"].append(episode_entry(row))
            known.add(row["episode_id"])
            added += 1
    if added:
        state["episodes"].sort(key=lambda e: e["episode_index"])
    return added


def new_state(start: dict | None) -> dict:
    """A fresh session file's content."""
    return {"start": start, "status": "recording", "episodes": [], "gaps": [], "discarded": [],
            "last_control_seq": 0, "steps_written": 0, "end": None}
