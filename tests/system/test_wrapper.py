"""record(env) in a user's own loop: single envs and vector envs (sync, async, both autoreset
modes), user seeds and unseeded resets; every step a row, every episode whole, and replay
reproduces them. Real envs, a real auto-started writer, real replays."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import ale_py
import gymnasium as gym
import numpy as np
import pytest

from recorder import record
from shared.errors import UsageError
from shared.protocol import CONTINUED, NO_SEED
from tests.support.processes import ROOT, free_endpoint
from tests.support.recorders import rows_table, session_state
from tests.support.replay_rows import replay_here

gym.register_envs(ale_py)
ENV = "BreakoutNoFrameskip-v4"


def _rows_per_episode(data_dir) -> Counter:
    table = rows_table(data_dir)
    return Counter((e, s) for e, s, last in zip(
        table.column("episode_id").to_pylist(), table.column("seed").to_pylist(),
        table.column("is_last").to_pylist(), strict=True) if not last)


def _sessions(data_dir) -> list[dict]:
    import json

    folder = data_dir / ENV / ".meta" / "sessions"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _replay(data_dir) -> str:
    result = replay_here(ENV, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_users_loop_with_their_seed_then_unseeded_resets(endpoint, data_dir):
    lengths = []
    with record(gym.make(ENV, max_episode_steps=70), data_dir=data_dir, endpoint=endpoint,
                agent="my-loop") as env:
        obs, _ = env.reset(seed=123)
        steps = 0
        for _ in range(200):
            obs, _, term, trunc, _ = env.step(int(obs.sum()) % 4)  # their policy
            steps += 1
            if term or trunc:
                lengths.append(steps)
                steps = 0
                obs, _ = env.reset()
        lengths.append(steps)  # the last one, cut by close(): aborted
    assert env.recording.steps_durable == 200 and env.recording.unconfirmed == 0
    env.close()  # twice is fine

    rows = _rows_per_episode(data_dir)
    assert sorted(rows.values()) == sorted(lengths)
    seeds = [seed for (_, seed) in sorted(rows)]
    # ALE: the later resets without a seed stay unseeded, replayable from their start states
    assert seeds.count(123) == 1 and set(seeds) == {123, CONTINUED}
    start = session_state(data_dir)["start"]
    assert start["player"] == "agent:my-loop" and start["env_kwargs"]["max_episode_steps"] == 70
    out = _replay(data_dir)
    assert "verdict: PASS" in out and "UNSEEDED" not in out


def test_unseeded_resets_kept_as_such(endpoint, data_dir, tmp_path):
    env = record(gym.make(ENV, max_episode_steps=40), data_dir=data_dir, endpoint=endpoint,
                 seed_resets=False)
    env.reset(seed=5)
    for _ in range(100):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()  # continues from the episode before: reproducible in order
    env.close()
    seeds = [seed for (_, seed) in sorted(_rows_per_episode(data_dir))]
    assert seeds[0] == 5 and set(seeds[1:]) == {CONTINUED} and len(seeds) == 3
    out = _replay(data_dir)
    assert "verdict: PASS" in out and "UNSEEDED" not in out

    elsewhere = tmp_path / "unknown"  # its own endpoint: the first one's writer may linger
    with record(gym.make(ENV), data_dir=elsewhere, endpoint=free_endpoint(),
                seed_resets=False) as env:
        env.reset()  # the env's RNG state is unknown: its episodes cannot be re-created
        for _ in range(5):
            env.step(0)
    assert [seed for (_, seed) in _rows_per_episode(elsewhere)] == [NO_SEED]


@pytest.mark.parametrize("mode, autoreset", [
    ("sync", gym.vector.AutoresetMode.NEXT_STEP),
    ("async", gym.vector.AutoresetMode.NEXT_STEP),
    ("sync", gym.vector.AutoresetMode.SAME_STEP),
])
def test_vector_envs_record_whole_episodes_per_sub_env(endpoint, data_dir, mode, autoreset):
    n = 4
    envs = gym.make_vec(ENV, num_envs=n, vectorization_mode=mode, max_episode_steps=50,
                        vector_kwargs={"autoreset_mode": autoreset})
    envs = record(envs, data_dir=data_dir, endpoint=endpoint)
    envs.reset(seed=40)
    lengths: list[list[int]] = [[0] for _ in range(n)]
    pending = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(0)
    for _ in range(130):
        _, _, term, trunc, _ = envs.step(rng.integers(0, 4, size=n))
        for i in range(n):
            if pending[i]:  # NEXT_STEP: this step reset sub-env i, no transition
                pending[i] = False
                continue
            lengths[i][-1] += 1
            if term[i] or trunc[i]:
                lengths[i].append(0)
                pending[i] = autoreset == gym.vector.AutoresetMode.NEXT_STEP
    envs.close()
    expected = sorted(x for per in lengths for x in per if x)
    assert sorted(_rows_per_episode(data_dir).values()) == expected
    sessions = _sessions(data_dir)
    assert len(sessions) == n
    for state in sessions:  # episodes of one sub-env follow each other, none overlapping
        indexes = [e["episode_index"] for e in state["episodes"]]
        assert indexes == list(range(len(indexes)))
    first_seeds = {s["episodes"][0]["seed"] for s in sessions}
    assert first_seeds == {40, 41, 42, 43}
    out = _replay(data_dir)
    assert "verdict: PASS" in out and "UNSEEDED" not in out and "FAIL" not in out


def test_an_env_of_no_platform_is_refused_before_anything_starts(endpoint, data_dir):
    with pytest.raises(UsageError, match="CartPoleEnv is none of them"):
        record(gym.make("CartPole-v1"), data_dir=data_dir, endpoint=endpoint)
    with pytest.raises(UsageError, match="takes a gymnasium Env"):
        record(object(), data_dir=data_dir, endpoint=endpoint)
    assert not data_dir.exists()


def test_a_script_that_ends_without_close_still_keeps_every_step(endpoint, data_dir):
    script = (
        "import gymnasium as gym, ale_py\n"
        "gym.register_envs(ale_py)\n"
        "from recorder import record\n"
        f"env = record(gym.make({ENV!r}), data_dir={str(data_dir)!r}, endpoint={endpoint!r})\n"
        "env.reset(seed=1)\n"
        "for _ in range(150):\n"
        "    env.step(0)\n"
        "raise SystemExit('the script ends without close()')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "without close()" in done.stderr
    state = session_state(data_dir)
    assert state["status"] == "ended"
    assert [(e["outcome"], e["steps"]) for e in state["episodes"]] == [("aborted", 150)]
    assert sum(_rows_per_episode(data_dir).values()) == 150


def test_a_running_writer_of_another_folder_is_refused(writer_factory, endpoint, data_dir,
                                                       tmp_path):
    writer_factory().start()  # writes to data_dir
    env = record(gym.make(ENV), data_dir=tmp_path / "mine", endpoint=endpoint)
    with pytest.raises(UsageError, match=r"writes to .*data, not to --data-dir .*mine"):
        env.reset(seed=1)
    env.close()
    assert not (tmp_path / "mine").exists() and not (data_dir / ENV).exists()
