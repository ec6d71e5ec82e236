"""The env's info per step: typed columns on each platform (ALE lives and frame numbers, the
Stable-Retro game's data.json variables, VizDoom game variables by name) equal to what a bare env
stepped with the same seed and actions reports, on every row including the final one; a JSON
column for the rest; `datasets.load_dataset` returns them (plain and streaming); replay names
a tampered info value as the first divergence at exactly its step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recorder.envs import make_env, resolve_env
from tests.support.processes import free_endpoint, run_record
from tests.support.replay_rows import edit_rows, failures, read_rows


def replay(env_id: str, data_dir: Path, *extra: str):
    """gymrec-replay in this process (no interpreter start-up); .exit_code, .stdout."""
    from click.testing import CliRunner

    from recorder.replay.cli import main

    return CliRunner().invoke(main, [env_id, "--data-dir", str(data_dir), *extra])


def _record(tmp_path_factory, env_id: str, steps: int) -> Path:
    data_dir = tmp_path_factory.mktemp("info") / "data"
    result = run_record(env_id, free_endpoint(), data_dir, "--episodes", "1", "--max-steps",
                        str(steps), "--seed", "4")
    assert result.returncode == 0, result.stderr
    return data_dir


@pytest.fixture(scope="module")
def breakout(tmp_path_factory) -> Path:
    return _record(tmp_path_factory, "BreakoutNoFrameskip-v4", 400)


def _bare_infos(env_id: str, rows: list[dict], with_frame) -> list[dict]:
    """What a bare env says with each frame (reset, then each recorded action)."""
    env = make_env(resolve_env(env_id))
    try:
        observation, info = env.reset(seed=rows[0]["seed"])
        infos = [with_frame(env, observation, info)]
        for row in rows[:-1]:
            observation, _, _, _, info = env.step(row["action"])
            infos.append(with_frame(env, observation, info))
    finally:
        env.close()
    return infos


def _session_start(data_dir: Path, env_id: str) -> dict:
    (path,) = (data_dir / env_id / ".meta" / "sessions").glob("*.json")
    return json.loads(path.read_text())["start"]


def test_atari_rows_hold_ales_info_and_the_rest_as_json(breakout):
    env_id = "BreakoutNoFrameskip-v4"
    rows = read_rows(breakout / env_id)
    assert rows[-1]["is_last"]
    names = ("lives", "episode_frame_number", "frame_number")
    expected = _bare_infos(env_id, rows, lambda env, obs, info: {k: info[k] for k in names})
    assert [r["info"] for r in rows] == expected  # the final row's too
    assert len({r["info"]["lives"] for r in rows}) > 1  # a life was lost on the way
    assert all(json.loads(r["info_json"]) == {} for r in rows[1:])
    assert _session_start(breakout, env_id)["info_columns"] == dict.fromkeys(names, "int64")


def test_retro_rows_hold_the_games_data_variables(tmp_path_factory):
    env_id = "Airstriker-Genesis-v0"
    data_dir = _record(tmp_path_factory, env_id, 400)
    rows = read_rows(data_dir / env_id)
    # a step's info is the game's data.json variables; reset says nothing, so ask the game
    expected = _bare_infos(env_id, rows, lambda env, obs, info:
                           dict(info) or dict(env.unwrapped.data.lookup_all()))
    assert [r["info"] for r in rows] == expected
    assert set(rows[0]["info"]) == {"gameover", "lives", "score"}
    assert len({r["info"]["score"] for r in rows}) > 1


def test_vizdoom_rows_hold_game_variables_by_name(tmp_path_factory):
    env_id = "VizdoomBasic-v1"
    data_dir = _record(tmp_path_factory, env_id, 60)
    rows = read_rows(data_dir / env_id)
    expected = _bare_infos(env_id, rows, lambda env, obs, info:
                           {"AMMO2": env.unwrapped.game.get_game_variable(
                               env.unwrapped.game.get_available_game_variables()[0])})
    assert [r["info"] for r in rows] == expected
    assert _session_start(data_dir, env_id)["info_columns"] == {"AMMO2": "float64"}


def test_load_dataset_returns_the_typed_info_plain_and_streaming(breakout):
    import datasets

    root = str(breakout / "BreakoutNoFrameskip-v4")
    plain = datasets.load_dataset(root, split="train")
    assert plain.features["info"] == {k: datasets.Value("int64") for k in
                                      ("lives", "episode_frame_number", "frame_number")}
    assert plain.features["info_json"] == datasets.Value("string")
    first = next(iter(datasets.load_dataset(root, split="train", streaming=True)))
    assert first["info"] == plain[0]["info"] == {"lives": 5, "episode_frame_number": 0,
                                                 "frame_number": 0}
    assert plain[-1]["is_last"] and plain[-1]["info"]["frame_number"] == 400


def test_a_tampered_info_value_is_the_first_divergence_at_its_step(breakout, tmp_path):
    env_id = "BreakoutNoFrameskip-v4"
    shutil.copytree(breakout, tmp_path / "copy", ignore=shutil.ignore_patterns(".writer.*"))
    root = tmp_path / "copy" / env_id
    target = 57

    def fewer_lives(info: dict) -> dict:
        return {**info, "lives": info["lives"] - 1}

    assert edit_rows(root, lambda r: r["step"] == target, "info", fewer_lives) == 1
    result = replay(env_id, root.parent, "--diff-dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    (fail,) = failures(result.stdout).values()
    assert (fail["step"], fail["fields"]) == (target - 1, ("info.lives",))
    assert "info lives: recorded 4, replayed 5, frame still equal" in result.stdout


def test_the_minari_export_carries_the_typed_info_in_its_infos(breakout, tmp_path,
                                                                monkeypatch):
    import minari  # in the dev group: always installed for the suite

    from writer.export.command import ExportSettings, run_export
    from writer.export.reading import LocalDataset

    env_id = "BreakoutNoFrameskip-v4"
    run_export(ExportSettings(dataset=LocalDataset(breakout / env_id), format="minari",
                              out=tmp_path, name=env_id))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    (episode,) = minari.load_dataset(f"gymrec/{env_id}-v0").iterate_episodes()
    rows = read_rows(breakout / env_id)
    for name in ("lives", "episode_frame_number", "frame_number"):
        assert list(episode.infos[name]) == [r["info"][name] for r in rows]  # N+1 of them
    assert len(episode.infos["timestamp"]) == len(rows)


_LOAD_INFO = r"""
import json, sys
import datasets
out = {}
for streaming in (False, True):
    ds = datasets.load_dataset(sys.argv[1], split="train", streaming=streaming)
    out[str(streaming)] = [[r["seq"], r["info"], r["info_json"], r["frame_hash"]] for r in ds]
print(json.dumps(out))
"""


def test_the_hub_parquet_carries_info_and_hashes_plain_and_streaming(breakout, tmp_path):
    import subprocess
    import sys

    from tests.support.hub_cli import hub_env
    from tests.support.hub_server import HubServer
    from tests.support.processes import ROOT

    env_id = "BreakoutNoFrameskip-v4"
    repo = f"me/GymnasiumRecording__{env_id}"
    with HubServer() as hub:
        env = hub_env(hub, tmp_path / "hf")
        pushed = subprocess.run([sys.executable, "-m", "writer.cli", "push", env_id,
                                 "--data-dir", str(breakout)], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=180)
        assert pushed.returncode == 0, pushed.stderr
        loaded = subprocess.run([sys.executable, "-c", _LOAD_INFO, repo], env=env,
                                capture_output=True, text=True, timeout=180)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
    local = [[r["seq"], r["info"], r["info_json"], r["frame_hash"]]
             for r in read_rows(breakout / env_id)]
    for streaming, rows in json.loads(loaded.stdout.splitlines()[-1]).items():
        assert sorted(rows, key=lambda r: r[0]) == local, streaming


@pytest.mark.parametrize("autoreset", ["NEXT_STEP", "SAME_STEP"])
def test_a_vector_envs_sub_env_rows_hold_their_own_info(tmp_path, autoreset):
    """record() of a vector env: each sub-env's rows carry that sub-env's info (from the
    batched infos and, under SAME_STEP, the final infos), the final rows included."""
    import ale_py
    import gymnasium as gym

    from recorder import record
    from tests.support.processes import free_endpoint as endpoint

    gym.register_envs(ale_py)
    envs = gym.make_vec("BreakoutNoFrameskip-v4", num_envs=2, vectorization_mode="sync",
                        max_episode_steps=15,
                        vector_kwargs={"autoreset_mode": getattr(gym.vector.AutoresetMode,
                                                                 autoreset)})
    data_dir = tmp_path / "data"
    recorded = record(envs, data_dir=data_dir, endpoint=endpoint())
    recorded.reset(seed=3)
    for _ in range(40):
        recorded.step(np.zeros(2, dtype=np.int64))
    recorded.close()
    rows = read_rows(data_dir / "BreakoutNoFrameskip-v4")
    ends = [r for r in rows if r["is_last"]]
    assert len(ends) >= 4
    for row in rows:  # NoFrameskip: one frame a step, counted from each reset
        assert row["info"] == {"lives": 5, "episode_frame_number": row["step"],
                               "frame_number": row["info"]["frame_number"]}, row
