"""Headless recording on each platform, end to end: real envs, real processes, real sockets,
then one `load_dataset` call."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import simplejpeg

from recorder.envs import frame_of, make_env, resolve_env
from recorder.seeds import episode_seed
from tests.support.datasets_check import assert_exact_episodes, load
from tests.support.processes import run_record


def _sampled_actions(space: gym.Space, seed: int, n: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def test_atari_three_episodes_auto_started_writer(endpoint, data_dir):
    result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "3",
                        "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert "gaps (dropped frames): 0" in result.stdout
    ds = load(data_dir, "BreakoutNoFrameskip-v4")
    episodes = assert_exact_episodes(ds)
    assert len(episodes) == 3
    assert sorted(r[0]["seed"] for r in episodes.values()) == sorted(
        episode_seed(7, e) for e in range(3))
    assert ds[0]["image"].size == (160, 210)
    assert isinstance(ds[0]["action"], int)
    sent = int(result.stdout.split("frames sent: ")[1].split()[0])
    assert sent == sum(len(rows) - 1 for rows in episodes.values())

    # The recorded actions are exactly the seeded agent's, in order, and row 0 of each episode
    # holds the frame the env showed after reset(seed) (encoded with the recorded settings).
    env = make_env(resolve_env("BreakoutNoFrameskip-v4"))
    for rows in episodes.values():
        seed = rows[0]["seed"]
        expected = _sampled_actions(env.action_space, seed, len(rows) - 1)
        assert [r["action"] for r in rows[:-1]] == [int(a) for a in expected]
        obs, _ = env.reset(seed=seed)
        first = next(r for r in ds.select_columns(["episode_id", "step", "image"])
                     .cast_column("image", ds.features["image"].__class__(decode=False))
                     if r["episode_id"] == rows[0]["episode_id"] and r["step"] == 0)
        encoded = simplejpeg.encode_jpeg(frame_of(obs, env), 95, "RGB", "444")
        assert first["image"]["bytes"] == encoded
    env.close()


def test_retro_accepts_old_name_and_stores_multibinary(endpoint, data_dir):
    result = run_record("Airstriker-Genesis", endpoint, data_dir, "--episodes", "2",
                        "--max-steps", "200", "--seed", "3")
    assert result.returncode == 0, result.stderr
    ds = load(data_dir, "Airstriker-Genesis-v0")
    episodes = assert_exact_episodes(ds)
    assert len(episodes) == 2
    assert all(len(rows) == 201 for rows in episodes.values())  # 200 steps + final row
    assert all(rows[-2]["truncated"] for rows in episodes.values())
    action = ds[0]["action"]
    assert isinstance(action, list) and len(action) == 12 and set(action) <= {0, 1}
    assert ds[0]["image"].size == (320, 224)


def test_vizdoom_two_workers_into_one_writer(endpoint, data_dir):
    result = run_record("VizdoomBasic-v1", endpoint, data_dir, "--episodes", "5",
                        "--workers", "2", "--seed", "11", "--max-steps", "120")
    assert result.returncode == 0, result.stderr
    ds = load(data_dir, "VizdoomBasic-v1")
    episodes = assert_exact_episodes(ds)
    assert len(episodes) == 5
    assert len(set(ds["session_id"])) == 2
    seeds = {rows[0]["seed"] for rows in episodes.values()}
    # Episodes are handed out as workers finish theirs: the recording's five, whoever played
    # them (one session each worker, each holding at least its first).
    assert seeds == {episode_seed(11, e) for e in range(5)}
    image = np.asarray(ds[0]["image"])
    assert image.shape == (240, 320, 3)
    assert all(isinstance(a, int) and 0 <= a < 4
               for a, last in zip(ds["action"], ds["is_last"], strict=True) if not last)


def test_episodes_are_the_same_whatever_the_number_of_workers(endpoint, data_dir):
    """Workers take the recording's episodes as they finish theirs: episode k has the same
    seed, actions and frames with one worker or three."""
    played, seen = {}, set()
    for workers in (1, 3):
        result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "5",
                            "--workers", str(workers), "--seed", "5", "--max-steps", "40")
        assert result.returncode == 0, result.stderr
        episodes = assert_exact_episodes(load(data_dir, "BreakoutNoFrameskip-v4"))
        new = {e: rows for e, rows in episodes.items() if rows[0]["session_id"] not in seen}
        sessions = {rows[0]["session_id"] for rows in new.values()}
        assert len(sessions) == workers
        seen |= sessions
        played[workers] = {rows[0]["seed"]: [(r["action"], r["frame_hash"]) for r in rows]
                           for rows in new.values()}
    assert set(played[1]) == {episode_seed(5, e) for e in range(5)}
    assert played[3] == played[1]


def test_png_codec_is_lossless(endpoint, data_dir):
    result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "1",
                        "--max-steps", "50", "--seed", "5", "--codec", "png")
    assert result.returncode == 0, result.stderr
    ds = load(data_dir, "BreakoutNoFrameskip-v4")
    env = make_env(resolve_env("BreakoutNoFrameskip-v4"))
    obs, _ = env.reset(seed=ds[0]["seed"])
    env.close()
    assert np.array_equal(np.asarray(ds[0]["image"]), obs)


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4"])
def test_dataset_metadata_beside_shards(endpoint, data_dir, env_id):
    import json

    result = run_record(env_id, endpoint, data_dir, "--episodes", "1", "--max-steps", "30")
    assert result.returncode == 0, result.stderr
    root = data_dir / env_id
    info = json.loads((root / ".meta" / "info.json").read_text())
    assert info["summary"]["episodes"] == 1 and info["summary"]["rows"] == 31
    assert info["environment"]["action_labels"] == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert info["environment"]["versions"]["ale-py"]
    (session_file,) = (root / ".meta" / "sessions").glob("*.json")
    state = json.loads(session_file.read_text())
    assert state["status"] == "ended" and state["episodes"][0]["outcome"] == "truncated"
    manifest = json.loads((root / ".meta" / "manifest.json").read_text())
    assert sum(s["rows"] for s in manifest["shards"]) == 31
