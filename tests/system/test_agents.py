"""--agent SPEC: the user's own policies (by file and by module), the example agents, and
policies that fail; --env-option reaching the env and replay. Real envs, writers, replays."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

from tests.support.processes import run_record
from tests.support.recorder_cli import record_here
from tests.support.recorders import rows_table, session_state, steps_by_episode
from tests.support.replay_rows import replay_here

TRACKER = textwrap.dedent('''
    """A user's policy file: FIRE when the agent's counter says so, else follow a pattern."""

    class Policy:
        def __init__(self, action_space, env_id=""):
            self.n, self.env_id, self.t = action_space.n, env_id, 0

        def reset(self, seed):
            self.t = seed % 7

        def act(self, observation):
            self.t += 1
            return (self.t * 3 + int(observation[100, 80, 0])) % self.n
''')


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _actions(table) -> list:
    """The actions of the step rows (not the final observations' fill values)."""
    return [a for a, last in zip(table.column("action").to_pylist(),
                                 table.column("is_last").to_pylist(), strict=True) if not last]


def _replay_passes(env_id: str, data_dir: Path) -> str:
    result = replay_here(env_id, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: PASS" in result.stdout, result.stdout
    return result.stdout


def test_a_policy_file_records_and_replays_with_its_hash(endpoint, data_dir, tmp_path):
    policy = _write(tmp_path / "mine", "policy.py", TRACKER)
    result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--agent",
                        f"{policy}:Policy", "--episodes", "2", "--max-steps", "120",
                        "--seed", "5")
    assert result.returncode == 0, result.stderr
    start = session_state(data_dir)["start"]
    assert start["player"] == f"agent:{policy}:Policy"
    assert start["agent_sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert start["fps"] == 60.0 and start["env_settings"]["frameskip"] == 1
    steps = steps_by_episode(rows_table(data_dir))
    assert {e: len(s) for e, s in steps.items()} == {0: 120, 1: 120}
    assert len(set(_actions(rows_table(data_dir)))) > 1  # its own choices
    _replay_passes("BreakoutNoFrameskip-v4", data_dir)


def test_a_policy_module_by_name_on_vizdoom(endpoint, data_dir, tmp_path):
    _write(tmp_path / "pkg" / "mypolicies", "__init__.py", "")
    _write(tmp_path / "pkg" / "mypolicies", "doom.py", textwrap.dedent('''
        class Turner:
            """Cycles through the actions, one per step."""
            def __init__(self, action_space):
                self.space, self.t = action_space, 0
            def act(self, observation):
                self.t += 1
                return self.space.sample() if self.t % 5 == 0 else self.t % 3
            def reset(self, seed):
                self.space.seed(seed)
    '''))
    result = run_record("VizdoomBasic-v1", endpoint, data_dir, "--agent",
                        "mypolicies.doom:Turner", "--episodes", "1", "--max-steps", "40",
                        cwd=tmp_path / "pkg")
    assert result.returncode == 0, result.stderr
    assert session_state(data_dir, "VizdoomBasic-v1")["start"]["player"] == \
        "agent:mypolicies.doom:Turner"
    (episode,) = session_state(data_dir, "VizdoomBasic-v1")["episodes"]
    steps = steps_by_episode(rows_table(data_dir, "VizdoomBasic-v1"))[0]
    assert steps == list(range(episode["steps"])) and 0 < episode["steps"] <= 40
    _replay_passes("VizdoomBasic-v1", data_dir)


def test_the_example_agents_play_their_games(endpoint, data_dir):
    result = run_record("Airstriker-Genesis", endpoint, data_dir, "--agent", "run-right-jump",
                        "--episodes", "1", "--max-steps", "60")
    assert result.returncode == 0, result.stderr
    buttons = session_state(data_dir, "Airstriker-Genesis-v0")["start"]["action_labels"]
    held = _actions(rows_table(data_dir, "Airstriker-Genesis-v0"))
    assert len(held) == 60 and all(a[buttons.index("RIGHT")] == 1 for a in held)
    assert {a[buttons.index("A")] for a in held} == {0, 1}  # it jumps now and then
    _replay_passes("Airstriker-Genesis-v0", data_dir)

    result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--agent",
                        "breakout-tracker", "--episodes", "1", "--max-steps", "1500",
                        "--seed", "2")
    assert result.returncode == 0, result.stderr
    rewards = rows_table(data_dir).column("reward").to_pylist()
    assert sum(r for r in rewards if r) >= 10  # random play scores 0-2 in 1,500 frames


@pytest.mark.parametrize("body, says", [
    ("    def act(self, observation):\n        self.t += 1\n"
     "        if self.t == 30:\n            raise RuntimeError('policy exploded')\n"
     "        return 0\n", "agent .* raised RuntimeError: policy exploded"),
    ("    def act(self, observation):\n        self.t += 1\n"
     "        return 0 if self.t < 30 else 9\n", "returned 9, which is not in the action space"),
])
def test_a_failing_policy_is_one_line_and_keeps_what_was_recorded(
        endpoint, data_dir, tmp_path, body, says):
    policy = _write(tmp_path, "bad.py", "class Bad:\n    def __init__(self, space):\n"
                    "        self.t = 0\n" + body)
    result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--agent",
                        f"{policy}:Bad", "--episodes", "2")
    assert result.returncode == 8, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("gymrec-record")]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[0].startswith("gymrec-record: ") and __import__("re").search(says, lines[0])
    state = session_state(data_dir)
    assert [(e["episode_index"], e["outcome"], e["steps"]) for e in state["episodes"]] == [
        (0, "aborted", 29)]
    assert len(steps_by_episode(rows_table(data_dir))[0]) == 29  # every step before it, durable


@pytest.mark.parametrize("spec, says", [
    ("nowhere.module:Agent", "cannot import nowhere.module: ModuleNotFoundError"),
    ("{tmp}/missing.py:Agent", "no file"),
    ("{tmp}/syntax.py:Agent", "cannot import .*SyntaxError"),
    ("{tmp}/empty.py:Agent", "has no attribute 'Agent'"),
    ("random-ish", "expected random, breakout-tracker"),
])
def test_an_agent_that_cannot_be_loaded_is_one_line_before_anything_starts(
        endpoint, data_dir, tmp_path, spec, says):
    _write(tmp_path, "syntax.py", "def broken(:\n")
    _write(tmp_path, "empty.py", "x = 1\n")
    # In this process: refused before anything starts, so no interpreter start-up is needed.
    result = record_here("BreakoutNoFrameskip-v4", "--agent", spec.format(tmp=tmp_path),
                         "--headless", "--endpoint", endpoint, "--data-dir", str(data_dir))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert __import__("re").search(says, result.stderr), result.stderr
    assert not data_dir.exists()  # no writer was started, nothing was made


def test_env_options_change_the_env_and_replay_uses_them(endpoint, data_dir):
    result = run_record("ALE/MsPacman-v5", endpoint, data_dir, "--env-option", "frameskip=1",
                        "--env-option", "repeat_action_probability=0.0", "--env-option",
                        "full_action_space=true", "--episodes", "1", "--max-steps", "80")
    assert result.returncode == 0, result.stderr
    start = session_state(data_dir, "ALE_MsPacman-v5")["start"]
    assert start["env_kwargs"] == {"frameskip": 1, "repeat_action_probability": 0.0,
                                   "full_action_space": True, "render_mode": "rgb_array"}
    assert start["action_space"] == {"type": "Discrete", "n": 18, "start": 0}
    assert start["fps"] == 60.0  # one console frame per step (v5's default would be 15)
    assert start["env_settings"]["repeat_action_probability"] == 0.0
    # A second session with the id's own frameskip (4) and sticky actions in the same dataset
    # (same action space): replay makes each session's env with that session's options.
    again = run_record("ALE/MsPacman-v5", endpoint, data_dir, "--env-option",
                       "full_action_space=true", "--episodes", "1", "--max-steps", "40")
    assert again.returncode == 0, again.stderr
    out = _replay_passes("ALE/MsPacman-v5", data_dir)
    assert "2 passed" in out, out

    common = ("--agent", "random", "--headless", "--endpoint", endpoint, "--data-dir",
              str(data_dir))  # refused before anything starts: in this process
    bad = record_here("ALE/MsPacman-v5", *common, "--env-option", "framesk=1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--env-option framesk: ALE/MsPacman-v5 takes no such option" in bad.stderr
    bad = record_here("ALE/MsPacman-v5", *common, "--env-option", "frameskip=[1,",
                      "--episodes", "1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert json.loads(json.dumps(start))  # the stored session stays plain JSON
