"""The dataset card (README.md) beside the shards, and `.meta/info.json` with the counts and
statistics.

The card has no `configs` on purpose: without them `load_dataset(folder)` finds `data/*.arrow` by
itself (hidden `.meta/` and `.incoming/` are skipped) and keys its cache on the files' sizes and
modification times, so a dataset that grows is read afresh. With `configs`, datasets 5.2 keys the
cache on the YAML alone and serves stale rows (seen here). The front matter is written by a YAML
emitter, never by formatting: a peer's strings (platform, env id) cannot add keys to it.

The license is the one this process was given (`configure_license`, from `--license`), else the
one the dataset's card already had (kept in `.meta/info.json`), else "other" (game footage).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from shared.codec import describe_codec
from shared.layout import DatasetLayout
from shared.schema import COLUMNS, column_notes
from writer.export.reading import DatasetUnreadable, LocalDataset, ShardRef, read_batches
from writer.store.durable import write_json_atomic
from writer.store.metadata import read_json_or_quarantine
from writer.store.shards import load_manifest
from writer.summary.card_parts import (
    DEFAULT_LICENSE,
    PREVIEW_NAME,
    CardExtras,
    cell,
    license_front_matter,
    license_section,
    preview_lines,
    stats_section,
)
from writer.summary.stats import STAT_COLUMNS, DatasetStats, StatsBuilder, merge

log = logging.getLogger("gymrec.writer")
PREVIEW_FRAMES = 24
_license: str | None = None  # set once by the CLI before any card is written


def configure_license(license_id: str | None) -> None:
    """The license every card this process writes declares (None: keep each dataset's)."""
    global _license
    _license = license_id


def card_license(layout: DatasetLayout) -> str:
    if _license:
        return _license
    info = read_json_or_quarantine(layout, layout.info) or {}
    stored = info.get("license")
    return stored if isinstance(stored, str) and stored else DEFAULT_LICENSE


def _sessions(layout: DatasetLayout) -> list[dict]:
    sessions = []
    for path in sorted(layout.sessions.glob("*.json")):
        state = read_json_or_quarantine(layout, path)
        if state is not None:
            sessions.append({"episodes": [], "gaps": [], **state})
    return sessions


def key_map_lines(sessions: list[dict]) -> list[str]:
    """The key bindings people played with, one line per distinct key map (none: no line)."""
    maps: list[dict] = []
    for s in sessions:
        keys = s.get("start", {}).get("key_bindings") if isinstance(s.get("start"), dict) else None
        if isinstance(keys, dict) and keys and keys not in maps:
            maps.append(keys)
    label = "key bindings of human play" + (" (they differ between sessions)" if len(maps) > 1
                                            else "")
    return [f"- {label}: " + ", ".join(f"`{cell(str(k))}` {cell(str(v))}"
                                       for k, v in sorted(keys.items(), key=lambda kv: kv[::-1]))
            for keys in maps]


def dataset_summary(layout: DatasetLayout) -> dict:
    """Counts over the sealed shards and session files (what `meta/info.json` holds)."""
    shards = load_manifest(layout)["shards"]
    sessions = _sessions(layout)
    episodes = [e for s in sessions for e in s["episodes"]]
    starts = [s["start"] for s in sessions if isinstance(s.get("start"), dict)]
    return {
        "env_id": starts[0].get("env_id") if starts else None,
        "sessions": len(sessions),
        "episodes": len(episodes),
        "rows": sum(s["rows"] for s in shards),
        "frames": sum(e["steps"] for e in episodes),
        "shards": len(shards),
        "bytes": sum(s["bytes"] for s in shards),
        "gaps": sum(g["count"] for s in sessions for g in s["gaps"]),
    }


# Per dataset folder: the statistics builder and the shards it has counted, by name, with the
# (inode, size, mtime) each had. A shard in data/ never changes once sealed, so a card counts only
# the shards sealed since the last one (reading every shard at each seal made a long collection's
# cards O(dataset) apiece); a counted shard gone or changed (moved aside, replaced) starts over.
_counted: dict[str, tuple[StatsBuilder, dict[str, tuple[int, int, int]]]] = {}


def dataset_stats(layout: DatasetLayout) -> DatasetStats:
    """Statistics over the sealed shards (a damaged one is left out, with a warning: `verify`
    names it)."""
    shards = layout.shards_of(layout.data) if layout.data.is_dir() else []
    present = {path.name: _identity(path) for path in shards}
    key = str(layout.root.resolve())
    builder, counted = _counted.get(key, (StatsBuilder(), {}))
    if any(present.get(name) != identity for name, identity in counted.items()):
        builder, counted = StatsBuilder(), {}
    for path in shards:  # any order: statistics do not depend on it
        if path.name in counted or present[path.name] is None:
            continue
        try:
            shard = ShardRef(path.name.split("-")[0], path.name, path)
            builder.add_batches(read_batches(shard, list(STAT_COLUMNS)))
        except DatasetUnreadable as exc:
            log.warning("statistics leave out %s", exc)
            continue
        counted[path.name] = present[path.name]
    _counted[key] = (builder, counted)
    sessions = [s for s in _sessions(layout) if isinstance(s.get("start"), dict)]
    return builder.build(sessions)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def has_preview(layout: DatasetLayout) -> bool:
    return (layout.meta / PREVIEW_NAME).exists()


def write_preview(layout: DatasetLayout) -> bool:
    """`.meta/preview.webp`: the dataset's first episode, animated (made once: the first
    episode never changes). False when there is nothing to show yet or it cannot be made."""
    target = layout.meta / PREVIEW_NAME
    if target.exists():
        return True
    from writer.summary.collect import first_episode_frames
    from writer.summary.pictures import preview_webp

    try:
        dataset = LocalDataset(layout.root, must_exist=False)
        sessions = dataset.sessions()
        frames = first_episode_frames(dataset, sessions, PREVIEW_FRAMES)
    except (DatasetUnreadable, StopIteration, ValueError) as exc:
        log.warning("no preview for %s: %s", layout.root.name, exc)
        return False
    if not frames:
        return False
    tmp = target.with_name(PREVIEW_NAME + ".tmp")
    tmp.write_bytes(preview_webp(frames, fps=10))
    tmp.replace(target)
    return True


def front_matter(platform: str, license_id: str) -> str:
    """The card's YAML header (emitted, so any string is quoted as needed)."""
    meta = {**license_front_matter(license_id), "tags": ["gymrec", "gameplay", platform]}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def write_card(layout: DatasetLayout, start: dict, make_preview: bool = True) -> None:
    """Regenerate README.md and meta/info.json from what is on disk (`make_preview`: make the
    preview if there is none yet, ~0.1 s; else the card shows one only if it exists)."""
    summary = dataset_summary(layout)
    stats = dataset_stats(layout)
    license_id = card_license(layout)
    write_json_atomic(layout.info, {"summary": summary, "statistics": stats.to_json(),
                                    "license": license_id, "environment": start})
    preview = write_preview(layout) if make_preview else has_preview(layout)
    lines = [
        front_matter(str(start["platform"]), license_id),
        f"# gymrec recording of {cell(start['env_id'])}",
        "",
        f"Gameplay recorded with gymrec {cell(start['recorder_version'])} on "
        f"{cell(start['platform'])}.",
        "",
        *(preview_lines(f".meta/{PREVIEW_NAME}") if preview else []),
        f"- sessions: {summary['sessions']}, episodes: {summary['episodes']}, "
        f"rows: {summary['rows']}, frames dropped in gaps: {summary['gaps']}",
        f"- frames: {start['frame_shape']} stored as "
        f"{describe_codec(start['codec'], start['quality'])}",
        f"- action space: `{json.dumps(start['action_space'])}`; labels: "
        f"{cell(', '.join(start['action_labels'])) or 'n/a'}",
        f"- env kwargs: `{cell(json.dumps(start['env_kwargs']))}`; fps: {start['fps']:g}",
        *([f"- env settings (as made): `{cell(json.dumps(start['env_settings']))}`"]
          if start.get("env_settings") else []),
        f"- package versions: `{cell(json.dumps(start['versions']))}`",
        *key_map_lines(_sessions(layout)),
        "",
        *stats_section(stats),
        "Columns: " + ", ".join(f"`{c}`" for c in COLUMNS) + ". "
        + column_notes(start.get("info_columns"), start.get("extras")),
        "Row t holds the frame seen when `action` t was chosen; each episode ends with a row",
        "where `is_last` is true that holds the final observation (no action there: `action` "
        "holds -1 in integer slots, NaN in float ones, and `reward` 0, so batches keep their "
        "dtypes; datasets recorded by earlier builds hold nulls there).",
        "",
        "```python",
        "import datasets",
        "ds = datasets.load_dataset(\"path/to/this/folder\", split=\"train\")",
        "```",
        "",
        *license_section(license_id),
    ]
    # Hidden while it is written: load_dataset(folder) lists the folder for its data files and
    # would trip over a file that is renamed away between its listing and its look at it.
    tmp = layout.card.with_name(".README.md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(layout.card)


# -- for the Hub card (writer/hub/upload.py) ------------------------------------------------------


def session_statistics(layout: DatasetLayout, state: dict) -> dict:
    """One session's statistics over its sealed shards here (`DatasetStats.to_json` with the
    per-episode lists, so that another machine can merge them into the repo's)."""
    builder = StatsBuilder()
    for path in layout.shards_of(layout.data, state["start"]["session"]):
        try:
            builder.add_batches(read_batches(ShardRef(state["start"]["session"], path.name,
                                                      path), list(STAT_COLUMNS)))
        except DatasetUnreadable as exc:
            log.warning("statistics leave out %s", exc)
    return builder.build([state]).to_json(per_episode=True)


def with_statistics(layout: DatasetLayout, sessions: list[dict]) -> list[dict]:
    """`sessions` (this folder's) each with its `statistics`."""
    return [{**s, "statistics": session_statistics(layout, s)} for s in sessions]


def card_extras(layout: DatasetLayout, sessions: list[dict]) -> CardExtras:
    """Statistics merged over the sessions that carry theirs (ours, and other machines' Hub
    session files written since gymrec records them), this folder's preview, the license."""
    parts = [s for s in sessions if isinstance(s.get("statistics"), dict)]
    try:
        stats = merge([s["statistics"] for s in parts], parts) if parts else None
    except (KeyError, TypeError, ValueError) as exc:  # a peer's malformed file
        log.warning("no statistics on the card: %s", exc)
        stats, parts = None, []
    preview = layout.meta / PREVIEW_NAME
    return CardExtras(stats=stats, stats_sessions=len(parts),
                      preview=preview.read_bytes() if write_preview(layout) else None,
                      license_id=card_license(layout))
