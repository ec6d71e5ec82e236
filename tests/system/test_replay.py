"""`gymrec-replay`: real recordings on each platform replay bit-exactly, and every kind of
tampering is caught exactly where it happened.

"Diverges at step N" (recorder/replay/replayer.py): step N is the first action whose outcome
differs, i.e. its reward/flags (row N) or the frame it led to (row N+1); "at reset": row 0's
frame differs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recorder.delivery.link import WriterLink
from recorder.envs import frame_of, make_env, resolve_env
from recorder.replay.images import side_by_side
from recorder.replay.render import ViewerInput, window_scale
from recorder.replay.replayer import env_action, plan_sessions, version_warnings
from recorder.session_start import session_start
from shared.codec import decode_frame, encode_frame
from shared.errors import UsageError
from shared.schema import EpisodeEndData, StepData, episode_id
from tests.support.processes import ROOT, free_endpoint, run_records
from tests.support.replay_rows import (
    edit_rows,
    failures,
    one_error_line,
    read_rows,
    replay_here,
)


def replay(env_id: str, data_dir: Path, *extra: str, timeout: float = 180
           ) -> subprocess.CompletedProcess:
    """`gymrec-replay` as its own process (most tests replay in this process: replay_here)."""
    cmd = [sys.executable, "-m", "recorder.replay.cli", env_id, "--data-dir", str(data_dir),
           *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def copy_dataset(data_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(".writer.*"))
    return copy


# -- recordings, one per platform (module scope: each is replayed several ways) ---------------

RECORDINGS = {  # name -> env id, recorder flags (Breakout's: conftest's breakout_recording)
    "doom": ("VizdoomBasic-v1", "--episodes", "2", "--max-steps", "100", "--seed", "11"),
    "png": ("BreakoutNoFrameskip-v4", "--episodes", "2", "--max-steps", "40", "--seed", "5",
            "--codec", "png"),
    "airstriker": ("Airstriker-Genesis", "--episodes", "1", "--max-steps", "150", "--seed", "3"),
}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """Name -> data folder: every recording of this module, made at once (a writer each)."""
    folders = {name: tmp_path_factory.mktemp(name) / "data" for name in RECORDINGS}
    results = run_records(*[(env_id, free_endpoint(), folders[name], *flags)
                            for name, (env_id, *flags) in RECORDINGS.items()])
    for result in results:
        assert result.returncode == 0, result.stderr
    return folders


@pytest.fixture(scope="module")
def breakout(breakout_recording) -> Path:
    return breakout_recording  # 2 episodes of 120 steps, read only


@pytest.fixture(scope="module")
def doom(recordings) -> Path:
    return recordings["doom"]


@pytest.fixture(scope="module")
def breakout_png(recordings) -> Path:
    return recordings["png"]


# -- every platform reproduces ----------------------------------------------------------------


def test_breakout_replays_bit_exactly(breakout, tmp_path):
    result = replay("BreakoutNoFrameskip-v4", breakout, "--diff-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "comparing JPEG bytes" in result.stdout and "quality 95, 4:4:4" in result.stdout
    assert result.stdout.count("PASS ") == 2
    # 120 actions → 121 frames each, the final observation included; none differ.
    assert result.stdout.count("0/121") == 2
    assert "verdict: PASS" in result.stdout and not list(tmp_path.iterdir())


def test_airstriker_replays_bit_exactly(recordings):
    result = replay_here("Airstriker-Genesis", recordings["airstriker"])  # old name: -v0
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS ") == 1 and "0/151" in result.stdout


def test_doom_replays_bit_exactly_and_renders(doom):
    result = replay_here("VizdoomBasic-v1", doom)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS ") == 2 and "verdict: PASS" in result.stdout
    (first, *_) = sorted({r["episode_id"] for r in read_rows(doom / "VizdoomBasic-v1")})
    shown = replay("VizdoomBasic-v1", doom, "--episode", first, "--render", "--fps", "5000")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.count("PASS ") == 1 and first in shown.stdout


# -- tampering is caught exactly where it happened --------------------------------------------


def _outcome_of(env, seed: int, actions: list, upto: int):
    """Reset with `seed`, play `actions[:upto + 1]`; the frame and reward after the last one."""
    env.reset(seed=seed)
    for action in actions[:upto]:
        env.step(action)
    observation, reward, *_ = env.step(actions[upto])
    return frame_of(observation, env).copy(), reward


def test_changed_action_diverges_at_exactly_that_step(doom, tmp_path):
    root = copy_dataset(doom, tmp_path) / "VizdoomBasic-v1"
    rows = [r for r in read_rows(root) if r["episode_index"] == 0]
    target, seed = rows[0]["episode_id"], rows[0]["seed"]
    actions = [r["action"] for r in rows[:-1]]
    k = min(25, len(actions) // 2)
    # Pick a replacement the env can tell apart from the recorded action right at step k.
    env = make_env(resolve_env("VizdoomBasic-v1"))
    try:
        frame, reward = _outcome_of(env, seed, actions, k)
        for other in range(env.action_space.n):
            if other == actions[k]:
                continue
            new_frame, new_reward = _outcome_of(env, seed, [*actions[:k], other], k)
            if not np.array_equal(new_frame, frame):
                break
        else:
            pytest.fail(f"no action differs visibly from {actions[k]} at step {k}")
    finally:
        env.close()
    assert edit_rows(root, lambda r: r["episode_id"] == target and r["step"] == k, "action",
                     lambda _: other) == 1

    result = replay_here("VizdoomBasic-v1", root.parent, "--diff-dir", str(tmp_path / "diffs"))
    assert result.returncode == 1, result.stdout + result.stderr
    found = failures(result.stdout)
    assert list(found) == [target], result.stdout  # the other episode still passes
    fail = found[target]
    assert fail["step"] == k  # the changed action's own step, not k-1 or k+1
    assert fail["frame"] == k + 1  # frames 0..k (seen before the change) all matched
    assert ("frame" in fail["fields"]) and (("reward" in fail["fields"]) == (new_reward != reward))
    picture = np.asarray(Image.open(fail["picture"]))
    assert picture.shape == (240, 3 * 320 + 8, 3)
    assert fail["picture"].name == f"{target}-step{k:06d}.png"
    assert "verdict: FAIL: 1 of 2" in result.stdout


def test_wrong_seed_fails_at_the_first_frame_that_differs(doom, tmp_path):
    root = copy_dataset(doom, tmp_path) / "VizdoomBasic-v1"
    rows = [r for r in read_rows(root) if r["episode_index"] == 1]
    target, seed = rows[0]["episode_id"], rows[0]["seed"]
    wrong = seed + 1
    edit_rows(root, lambda r: r["episode_id"] == target, "seed", lambda _: wrong)
    # Episode 0 gets an action the env refuses: that episode fails, the replay goes on.
    refused = rows[0]["episode_id"].replace("-00001", "-00000")
    edit_rows(root, lambda r: r["episode_id"] == refused and r["step"] == 3, "action",
              lambda _: 99)
    # Independent oracle: raw frames with the right and the wrong seed, same actions.
    env = make_env(resolve_env("VizdoomBasic-v1"))
    try:
        runs = []
        for s in (seed, wrong):
            observation, _ = env.reset(seed=s)
            frames = [frame_of(observation, env).copy()]
            for row in rows[:-1]:
                observation, _, terminated, truncated, _ = env.step(row["action"])
                frames.append(frame_of(observation, env).copy())
                if terminated or truncated:
                    break
            runs.append(frames)
    finally:
        env.close()
    first = next(i for i, (a, b) in enumerate(zip(*runs, strict=False))
                 if not np.array_equal(a, b))

    result = replay_here("VizdoomBasic-v1", root.parent, "--diff-dir", str(tmp_path / "diffs"))
    assert result.returncode == 1, result.stdout + result.stderr
    fail = failures(result.stdout)[target]
    assert fail["frame"] == first
    assert fail["step"] == (None if first == 0 else first - 1)
    assert fail["picture"].exists()
    assert re.search(rf"^FAIL {refused}: the env raised at step 3: ", result.stdout, re.M)
    assert "verdict: FAIL: 2 of 2" in result.stdout


def test_png_compares_raw_pixels_one_level_of_one_pixel(breakout_png, tmp_path):
    root = copy_dataset(breakout_png, tmp_path) / "BreakoutNoFrameskip-v4"
    target = read_rows(root)[0]["episode_id"]
    row = 17

    def nudge(image: dict) -> dict:
        pixels = decode_frame(image["bytes"], "png", 3).copy()
        pixels[100, 80, 1] ^= 1  # one channel of one pixel, by one level
        return {"bytes": encode_frame(pixels, list(pixels.shape), "png", 95), "path": None}

    assert edit_rows(root, lambda r: r["episode_id"] == target and r["step"] == row, "image",
                     nudge) == 1
    (session_file,) = (root / ".meta" / "sessions").glob("*.json")
    state = json.loads(session_file.read_text())
    state["start"]["versions"]["ale-py"] = "0.0.1"  # as if recorded with another ale-py
    session_file.write_text(json.dumps(state))
    result = replay_here("BreakoutNoFrameskip-v4", root.parent, "--diff-dir", str(tmp_path),
                         "--check", "image")
    assert re.search(r"^gymrec-replay: warning: ale-py 0\.0\.1 was recorded, \S+ is installed",
                     result.stderr, re.M), result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert "comparing raw pixels" in result.stdout and "JPEG" not in result.stdout
    fail = failures(result.stdout)[target]
    assert (fail["step"], fail["frame"], fail["fields"], fail["max_diff"]) == (
        row - 1, row, ("image",), 1)  # the stored image; the frame's hash still matches
    assert "1/41" in result.stdout  # only that frame differs; the other episode passes
    assert result.stdout.count("PASS ") == 1


# -- aborted, discarded, gaps: reported as such -----------------------------------------------


def test_aborted_discarded_and_gap_episodes_are_not_failures(writer_factory, endpoint,
                                                             data_dir):
    """A session played by this test through the real link and writer, cut at 20 steps:
    episode 0 complete, 1 discarded, 2 with a gap (steps 5-7 dropped), 3 aborted the way an
    interrupt right after `env.step` leaves it (its final frame follows an unsent action)."""
    writer_factory().start()
    choice = resolve_env("BreakoutNoFrameskip-v4")
    env = make_env(choice)
    seeds = [101, 102, 103, 104]
    observation, _ = env.reset(seed=seeds[0])
    start = session_start("ab" * 16, choice, env, observation, fps=15.0, codec="jpeg",
                          quality=95, base_seed=0, collector="test", max_steps=20)
    link = WriterLink(endpoint, start, 1 << 26)
    env.action_space.seed(0)
    for episode, (outcome, steps) in enumerate([("truncated", 20), ("discarded", 20),
                                                ("truncated", 20), ("aborted", 12)]):
        observation, _ = env.reset(seed=seeds[episode])
        for step in range(steps):
            frame = frame_of(observation, env)
            action = env.action_space.sample()
            observation, reward, terminated, truncated, _ = env.step(action)
            cut = outcome == "truncated" and step == steps - 1
            if episode == 2 and 5 <= step <= 7:
                link.outbox.drop_step(episode, step)  # what a full resend buffer does
            else:
                link.send_step(StepData(
                    episode=episode, step=step, seed=seeds[episode], frame=frame,
                    timestamp=time.time(), action=int(action), reward=float(reward),
                    terminated=terminated, truncated=truncated or cut))
            link.pump()
            assert not terminated
        if outcome == "aborted":
            observation, *_ = env.step(env.action_space.sample())  # stepped, never sent
        link.send_episode_end(EpisodeEndData(
            episode=episode, step=steps, seed=seeds[episode], frame=frame_of(observation, env),
            timestamp=time.time(), outcome=outcome, terminated=False,
            truncated=outcome == "truncated"))
    env.close()
    link.send_session_end("completed")
    assert link.drain(timeout=60)
    link.close()

    result = replay_here("BreakoutNoFrameskip-v4", data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    ids = [episode_id(start.session, e) for e in range(4)]
    assert re.search(rf"{ids[0]} .* truncated .* PASS ", table)
    assert re.search(rf"{ids[1]} .* discarded .* DISCARDED ", table)
    assert re.search(rf"{ids[2]} .* truncated .* GAP .* 0/5 ", table)  # frames 0-4 compared
    assert re.search(rf"{ids[3]} .* aborted .* ABORTED .* 0/12 ", table)  # final frame not
    assert f"GAP {ids[2]}: recorded gap from step 5" in table
    assert "verdict: PASS" in table
    assert "(1 passed, 1 aborted, 1 cut short by a gap, 1 discarded)" in table


# -- errors: one clear line, non-zero exit ----------------------------------------------------


def test_missing_episode_id(breakout):
    result = replay_here("BreakoutNoFrameskip-v4", breakout, "--episode", "0" * 32 + "-00009")
    assert result.returncode == 2
    assert "is not in this dataset" in one_error_line(result)


@pytest.mark.parametrize(("args", "code", "words"), [
    (["Breakout"], 2, "did you mean"),
    (["ALE/Pong-v5"], 2, "no recorded dataset"),
    (["BreakoutNoFrameskip-v4", "--repo", "GymnasiumRecording__BreakoutNoFrameskip-v4"], 2,
     "is not a Hub repo id (owner/name)"),
])
def test_bad_input_one_line(tmp_path, args, code, words):
    result = replay_here(args[0], tmp_path, *args[1:])
    assert result.returncode == code
    assert words in one_error_line(result)


# -- pure pieces ------------------------------------------------------------------------------


def test_plan_and_versions_and_actions():
    session = {"start": {"session": "c" * 32, "env_id": "X", "platform": "atari",
                         "env_kwargs": {}, "codec": "jpeg", "quality": 95,
                         "frame_shape": [2, 2, 3], "max_steps": 0, "fps": 15.0,
                         "versions": {"ale-py": "0.1"}, "started_at": 1.0},
               "status": "ended", "episodes": [], "gaps": []}
    with pytest.raises(UsageError, match="not in this dataset"):
        plan_sessions([session], "c" * 32 + "-00000")
    assert version_warnings({"ale-py": "0.1", "numpy": "2"}, {"ale-py": "0.2", "numpy": "2"}) \
        == ["ale-py 0.1 was recorded, 0.2 is installed"]
    import gymnasium as gym

    action = env_action([0, 1, 1], gym.spaces.MultiBinary(3))
    assert action.dtype == np.int8 and action.tolist() == [0, 1, 1]
    box = env_action([0.25, -1.0], gym.spaces.Box(-1, 1, (2,), np.float32))
    assert box.dtype == np.float32 and box.tolist() == [0.25, -1.0]


def test_side_by_side_and_viewer_input():
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    b[1, 2, 0] = 9
    image = side_by_side(a, b)
    assert image.shape == (4, 15 + 8, 3)
    heat = image[:, 10 + 8:]
    assert heat[1, 2, 0] == 255 and heat.sum() == heat[1, 2].sum()  # only that pixel lit
    assert window_scale(160) == 2 and window_scale(320) == 1
    import pygame

    state = ViewerInput()
    state.process_event(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE))
    assert state.paused and not state.quit
    state.process_event(pygame.event.Event(pygame.QUIT))
    assert state.quit
