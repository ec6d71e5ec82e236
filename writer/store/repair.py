"""Start-up repair of one dataset folder: seal what a crash left open, then make the metadata
agree with the shards (a damaged manifest or session file is moved aside and rebuilt; episodes
whose final rows reached the shards but not the session file are added)."""

from __future__ import annotations

from shared.layout import DatasetLayout
from writer.store.card import write_card
from writer.store.durable import write_json_atomic
from writer.store.metadata import (
    add_missing_episodes,
    new_state,
    read_json_or_quarantine,
    session_rows,
)
from writer.store.session import discarded_episodes
from writer.store.shards import load_manifest, recover


def repair_dataset(layout: DatasetLayout) -> None:
    """Run before serving: afterwards the manifest lists every sealed shard and each session
    file every episode whose final row is in them."""
    recover(layout, lambda sid: discarded_episodes(layout, sid))
    manifest = load_manifest(layout)
    session_ids = {s["session_id"] for s in manifest["shards"]}
    if layout.sessions.is_dir():
        session_ids |= {path.stem for path in layout.sessions.glob("*.json")}
    changed = False
    starts = []
    for sid in sorted(session_ids):
        path = layout.session_file(sid)
        state = read_json_or_quarantine(layout, path)
        if state is not None and state.get("status") == "ended":
            starts.append(state.get("start"))
            continue  # a session's end is saved after all its rows: nothing can be missing
        rebuilt = state is None
        if rebuilt:  # damaged, or lost: what the shards say (its recorder may still resume)
            state = new_state(_start_guess(layout, sid))
            state["status"] = "interrupted"
            state["rebuilt_from_shards"] = True
            state["steps_written"] = sum(s["rows"] for s in manifest["shards"]
                                         if s["session_id"] == sid)
        else:
            state = {**new_state(None), **state}
        final, _ = session_rows(layout, sid)
        if add_missing_episodes(state, final) or rebuilt:
            layout.sessions.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, state)
            changed = True
        starts.append(state["start"])
    start = next((s for s in starts if s is not None), None)
    if changed and start is not None:
        write_card(layout, start)


def _start_guess(layout: DatasetLayout, session_id: str) -> dict | None:
    """For a session whose file was lost: the dataset's recorded environment (every session of
    a dataset records one env, codec and frame shape), under this session's id."""
    info = read_json_or_quarantine(layout, layout.info) or {}
    environment = info.get("environment")
    if not isinstance(environment, dict):
        return None
    return {**environment, "session": session_id}
