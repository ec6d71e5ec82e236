"""Headless recorders that encode their own frames (`--encode-in recorder`, the default when
every core has a recorder) store exactly what the writer's encoding stores, extras included,
and replay verifies what they stored."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.support.processes import free_endpoint, run_records
from tests.support.replay_rows import replay_here


def _rows(data_dir, env_id: str) -> dict[tuple[int, int], dict]:
    """Every stored row by (seed, step), without what differs between two recordings (session
    ids, times)."""
    files = sorted((data_dir / env_id / "data").glob("*.arrow"))
    table = pa.concat_tables(pa.ipc.open_stream(str(f)).read_all() for f in files)
    table = table.drop_columns(["session_id", "episode_id", "episode_index", "timestamp",
                                "seq"])
    return {(row["seed"], row["step"]): row for row in table.to_pylist()}


@pytest.mark.parametrize("env_id, extra", [
    ("BreakoutNoFrameskip-v4", ("--record", "ram")),
    ("BreakoutNoFrameskip-v4", ("--codec", "png", "--max-steps", "40")),  # the last one counts
    ("VizdoomBasic-v1", ()),
])
def test_frames_encoded_by_the_recorders_are_stored_as_the_writer_stores_them(
        tmp_path, env_id, extra):
    # One worker each: with two, which worker plays which episode varies, and with it the
    # env's running frame counter (info, start states).
    args = ("--workers", "1", "--episodes", "4", "--max-steps", "150", "--seed", "21", *extra)
    runs = {where: tmp_path / where for where in ("recorder", "writer")}
    results = run_records(*((env_id, free_endpoint(), folder, *args, "--encode-in", where)
                            for where, folder in runs.items()))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "gaps (dropped frames): 0" in result.stdout
    ours, theirs = (_rows(folder, env_id) for folder in runs.values())
    assert len({seed for seed, _ in ours}) == 4 and len(ours) > 4 * 20
    assert ours.keys() == theirs.keys()
    differing = {key: [name for name in row if row[name] != theirs[key][name]]
                 for key, row in ours.items() if row != theirs[key]}
    assert not differing  # image bytes, frame hashes, actions, info, extras: all of it
    replayed = replay_here(env_id, runs["recorder"])
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "FAIL" not in replayed.stdout
