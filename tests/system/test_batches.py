"""Recorded datasets batch like any other: a slice that crosses an episode's final row
(`is_last`) keeps every column's dtype under `with_format("numpy")`, and the README's recipe
gives exactly the (obs, action, next_obs) transitions. Real recordings of Atari and Retro,
whose progress went into a pipe: whole plain lines, never a bar cut to a guessed width."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest

from tests.support.processes import ROOT, free_endpoint, record_cmd

EPISODE_STEPS = 20


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Env id → (a data folder holding 2 episodes of EPISODE_STEPS steps, the recorder's
    stdout)."""
    made, running = {}, []
    for env_id in ("BreakoutNoFrameskip-v4", "Airstriker-Genesis-v0"):  # both at once
        made[env_id] = tmp_path_factory.mktemp("batches") / "data"
        cmd = record_cmd(env_id, free_endpoint(), made[env_id], "--episodes", "2",
                         "--max-steps", str(EPISODE_STEPS), "--seed", "3")
        running.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    for env_id, proc in zip(made, running, strict=True):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        made[env_id] = (made[env_id], out)
    return made


def transitions(ds: datasets.Dataset) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The README's recipe: rows i (an action) and i + 1 (the observation it led to)."""
    meta = ds.select_columns(["episode_id", "step", "is_last"]).with_format("numpy")[:]
    same = meta["episode_id"][1:] == meta["episode_id"][:-1]
    i = np.flatnonzero(~meta["is_last"][:-1] & same & (meta["step"][1:] == meta["step"][:-1] + 1))
    return ds.select(i), ds.select(i + 1)


@pytest.mark.parametrize(("env_id", "action_shape"), [
    ("BreakoutNoFrameskip-v4", ()),  # Discrete: was float32 with NaN
    ("Airstriker-Genesis-v0", (12,)),  # MultiBinary: was an object array
])
def test_a_slice_across_a_final_row_keeps_its_dtypes(recordings, env_id, action_shape):
    ds = datasets.load_dataset(str(recordings[env_id][0] / env_id), split="train")
    last = int(np.flatnonzero(ds.with_format("numpy")["is_last"])[0])
    batch = ds.with_format("numpy")[last - 2:last + 3]
    assert batch["is_last"].tolist() == [False, False, True, False, False]
    steps_only = ds.with_format("numpy")[0:2]  # rows of one episode, no final row
    assert np.issubdtype(batch["action"].dtype, np.integer)
    assert batch["action"].dtype == steps_only["action"].dtype
    assert batch["action"].shape == (5, *action_shape)
    assert (batch["action"][2] == -1).all()  # the fill of the final row: no action there
    assert batch["reward"].dtype == steps_only["reward"].dtype
    assert not np.isnan(batch["reward"]).any()
    assert batch["reward"][2] == 0.0
    assert batch["image"].dtype == np.uint8 and batch["image"].shape[0] == 5

    obs, nxt = transitions(ds)
    assert len(obs) == 2 * EPISODE_STEPS  # every step, and only steps
    assert not any(obs["is_last"])
    assert nxt["step"] == [s + 1 for s in obs["step"]]
    assert nxt["episode_id"] == obs["episode_id"]


def test_a_dataset_with_null_final_rows_from_before_still_loads(recordings, tmp_path):
    env_id = "BreakoutNoFrameskip-v4"
    data_dir = tmp_path / "data"
    shutil.copytree(recordings[env_id][0], data_dir,
                    ignore=shutil.ignore_patterns(".writer.*"))
    [shard] = (data_dir / env_id / "data").glob("*.arrow")
    with pa.memory_map(str(shard)) as stream:
        table = ipc.open_stream(stream).read_all()
    # As gymrec wrote final rows before: action and reward null, another session.
    last = table.column("is_last")
    old = table.set_column(table.schema.get_field_index("action"), "action",
                           pc.if_else(last, pa.scalar(None, pa.int64()), table["action"]))
    old = old.set_column(old.schema.get_field_index("reward"), "reward",
                         pc.if_else(last, pa.scalar(None, pa.float64()), old["reward"]))
    with pa.OSFile(str(shard.with_name(f"{uuid.uuid4().hex}-0001.arrow")), "wb") as out:
        with ipc.new_stream(out, table.schema) as writer:
            writer.write_table(old)
    ds = datasets.load_dataset(str(data_dir / env_id), split="train")
    assert len(ds) == 2 * table.num_rows
    actions = ds["action"]
    assert actions.count(None) == 2 and actions.count(-1) == 2  # 2 episodes in each


def test_progress_into_a_pipe_is_plain_whole_lines(recordings):
    for env_id, (_, out) in recordings.items():
        assert "…" not in out and "\x1b[" not in out  # nothing cut, no terminal escapes
        progress = [ln for ln in out.splitlines() if ln.startswith(f"{env_id}: episodes")]
        assert progress, out
        assert re.fullmatch(rf"{env_id}: episodes 2/2  frames {2 * EPISODE_STEPS}  [\d,]+/s  "
                            r"durable \d+  backlog \d+  gaps 0  \(\d+ s\)", progress[-1]), out
