"""The dataset card (README.md) beside the shards, and `.meta/info.json` with the counts.

The card has no `configs` on purpose: without them `load_dataset(folder)` finds `data/*.arrow` by
itself (hidden `.meta/` and `.incoming/` are skipped) and keys its cache on the files' sizes and
modification times, so a dataset that grows is read afresh. With `configs`, datasets 5.2 keys the
cache on the YAML alone and serves stale rows (seen here).
"""

from __future__ import annotations

import json

from shared.codec import describe_codec
from shared.layout import DatasetLayout
from shared.schema import COLUMNS
from writer.store.durable import write_json_atomic
from writer.store.metadata import read_json_or_quarantine
from writer.store.shards import load_manifest

_FRONT_MATTER = """---
license: mit
tags:
- gymrec
- gameplay
- {platform}
---
"""


def dataset_summary(layout: DatasetLayout) -> dict:
    """Counts over the sealed shards and session files (what `meta/info.json` holds)."""
    shards = load_manifest(layout)["shards"]
    sessions = []
    for path in sorted(layout.sessions.glob("*.json")):
        state = read_json_or_quarantine(layout, path)
        if state is not None:
            sessions.append({"episodes": [], "gaps": [], **state})
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


def write_card(layout: DatasetLayout, start: dict) -> None:
    """Regenerate README.md and meta/info.json from what is on disk."""
    summary = dataset_summary(layout)
    write_json_atomic(layout.info, {"summary": summary, "environment": start})
    lines = [
        _FRONT_MATTER.format(platform=start["platform"]),
        f"# gymrec recording of {start['env_id']}",
        "",
        f"Gameplay recorded with gymrec {start['recorder_version']} on {start['platform']}.",
        "",
        f"- sessions: {summary['sessions']}, episodes: {summary['episodes']}, "
        f"rows: {summary['rows']}, frames dropped in gaps: {summary['gaps']}",
        f"- frames: {start['frame_shape']} stored as "
        f"{describe_codec(start['codec'], start['quality'])}",
        f"- action space: `{json.dumps(start['action_space'])}`; labels: "
        f"{', '.join(start['action_labels']) or 'n/a'}",
        f"- env kwargs: `{json.dumps(start['env_kwargs'])}`; fps: {start['fps']}",
        f"- package versions: `{json.dumps(start['versions'])}`",
        "",
        "Columns: " + ", ".join(f"`{c}`" for c in COLUMNS) + ".",
        "Row t holds the frame seen when `action` t was chosen; each episode ends with a row",
        "where `is_last` is true that holds the final observation (action and reward null).",
        "",
        "```python",
        "import datasets",
        "ds = datasets.load_dataset(\"path/to/this/folder\", split=\"train\")",
        "```",
        "",
    ]
    tmp = layout.card.with_name("README.md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(layout.card)
