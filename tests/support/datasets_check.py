"""Checks on a recorded dataset, shared by several tests."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import datasets


def load(data_dir: Path, env_folder: str) -> datasets.Dataset:
    return datasets.load_dataset(str(data_dir / env_folder), split="train")


def is_fill(action) -> bool:
    """Whether `action` is a final row's fill (shared.schema.action_fill): -1s or NaNs."""
    if isinstance(action, dict):
        return all(is_fill(v) for v in action.values())
    if isinstance(action, list):
        return bool(action) and all(v == -1 or v != v for v in action)
    return action == -1


def episodes_of(ds: datasets.Dataset) -> dict[str, list[dict]]:
    """Rows (without images) grouped by episode and ordered by step."""
    by_episode: dict[str, list[dict]] = defaultdict(list)
    for row in ds.remove_columns("image"):
        by_episode[row["episode_id"]].append(row)
    return {k: sorted(v, key=lambda r: r["step"]) for k, v in by_episode.items()}


def assert_exact_episodes(ds: datasets.Dataset) -> dict[str, list[dict]]:
    """Every episode: steps 0..T exactly once each, one final row at T, one seed."""
    episodes = episodes_of(ds)
    for eid, rows in episodes.items():
        steps = [r["step"] for r in rows]
        assert steps == list(range(len(rows))), f"{eid}: steps not contiguous/unique"
        assert [r["is_last"] for r in rows] == [False] * (len(rows) - 1) + [True], eid
        assert len({r["seed"] for r in rows}) == 1, eid
        assert is_fill(rows[-1]["action"]) and rows[-1]["reward"] == 0.0, eid
        assert not any(is_fill(r["action"]) for r in rows[:-1]), eid
    seqs = ds["seq"]
    per_session = defaultdict(list)
    for sid, seq in zip(ds["session_id"], seqs, strict=True):
        per_session[sid].append(seq)
    for sid, s in per_session.items():
        assert len(s) == len(set(s)), f"session {sid}: duplicate rows"
    return episodes
