"""`gymrec-replay` verdicts say what was verified: no PASS when no episode was replayed to a
recorded end, and rows lost with a damaged shard are blamed on that shard."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest

from recorder.delivery.link import WriterLink
from recorder.envs import frame_of, make_env, resolve_env
from recorder.session_start import session_start
from shared.schema import EpisodeEndData, StepData
from tests.support.replay_rows import replay_here

ENV = "BreakoutNoFrameskip-v4"


def _replay(data_dir: Path) -> subprocess.CompletedProcess:
    return replay_here(ENV, data_dir)  # in this process: no interpreter start-up


def test_only_aborted_episodes_is_not_a_pass(writer_factory, endpoint, data_dir):
    """Two episodes, both cut short by the player (aborted): they replay as far as they go,
    but nothing reached a recorded end, so the verdict is not PASS."""
    writer_factory().start()
    choice = resolve_env(ENV)
    env = make_env(choice)
    observation, _ = env.reset(seed=7)
    start = session_start("cd" * 16, choice, env, observation, fps=15.0, codec="jpeg",
                          quality=95, base_seed=0, collector="test", max_steps=None)
    link = WriterLink(endpoint, start, 1 << 26)
    env.action_space.seed(0)
    for episode, seed in enumerate([7, 8]):
        observation, _ = env.reset(seed=seed)
        for step in range(10):
            frame = frame_of(observation, env)
            action = env.action_space.sample()
            observation, reward, terminated, truncated, _ = env.step(action)
            link.send_step(StepData(episode=episode, step=step, seed=seed, frame=frame,
                                    timestamp=time.time(), action=int(action),
                                    reward=float(reward), terminated=terminated,
                                    truncated=truncated))
            link.pump()
        link.send_episode_end(EpisodeEndData(
            episode=episode, step=10, seed=seed, frame=frame_of(observation, env),
            timestamp=time.time(), outcome="aborted", terminated=False, truncated=False))
    env.close()
    link.send_session_end("interrupted")
    assert link.drain(timeout=60)
    link.close()
    result = _replay(data_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: PASS" not in result.stdout
    assert "verdict: NOT VERIFIED: no episode was replayed to a recorded end (2 aborted)" in (
        result.stdout)


@pytest.fixture(scope="module")
def recorded(breakout_recording) -> Path:
    return breakout_recording  # conftest's: 2 episodes of 120 steps; the tests damage copies


def _batch_ends(path: Path) -> list[int]:
    """Byte offsets just after each record batch of a shard."""
    ends = []
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_stream(source)
        for _ in reader:
            ends.append(source.tell())
    return ends


def test_rows_lost_with_a_damaged_shard_name_it(recorded, tmp_path):
    """A shard cut exactly after its first batch reads as a clean, shorter stream: the
    episodes it lost are blamed on that shard, with a pointer to `gymrec-writer verify`."""
    data_dir = tmp_path / "data"
    shutil.copytree(recorded, data_dir)
    (shard,) = (data_dir / ENV / "data").glob("*.arrow")
    ends = _batch_ends(shard)
    assert len(ends) >= 2  # a batch per episode at least
    with open(shard, "r+b") as f:
        f.truncate(ends[0])
    result = _replay(data_dir)
    assert result.returncode == 1
    lost = [ln for ln in result.stdout.splitlines() if "no rows in data/" in ln]
    assert lost, result.stdout
    assert all(f"data/{shard.name} (" in ln and "gymrec-writer verify" in ln for ln in lost)


def test_a_shard_cut_inside_a_batch_is_one_line_with_a_pointer(recorded, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(recorded, data_dir)
    (shard,) = (data_dir / ENV / "data").glob("*.arrow")
    ends = _batch_ends(shard)
    with open(shard, "r+b") as f:
        f.truncate(ends[0] + (ends[1] - ends[0]) // 2)
    result = _replay(data_dir)
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("gymrec-replay:")]
    assert len(errors) == 1 and shard.name in errors[0] and "gymrec-writer verify" in errors[0]
    assert "Traceback" not in result.stderr
