"""Human play end to end on each platform: scripted pygame key events (posted into pygame's own
queue under SDL_VIDEODRIVER=dummy) drive a real window session into a real writer; the dataset
holds exactly the actions the keys meant, frame by frame."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pygame
import pytest

from recorder.envs import make_env, resolve_env
from recorder.play.hud import RED, HudInfo, hud_lines
from recorder.play.keymaps import load_keymap
from recorder.play.window import PlaySettings, PlayStatus, play
from recorder.seeds import episode_seed
from tests.support.datasets_check import assert_exact_episodes, load
from tests.support.processes import ROOT, WriterProcess, free_endpoint
from tests.support.recorder_cli import record_here

FPS = 250.0

# A plan says, for the frame on screen, which keys the player holds and which keys they tap
# (press and release before the next frame): plan(status) -> (held key names, tapped names).
Plan = Callable[[PlayStatus], tuple[set[str], list[str]]]


class Player:
    """An event source that plays like a person following `plan`, posting real key events into
    pygame's queue, and remembers which keys it held for each recorded frame."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.held: set[str] = set()
        self.keys_at: dict[tuple[int, int], frozenset[str]] = {}
        self.phases: list[str] = []

    def __call__(self, status: PlayStatus) -> list[pygame.event.Event]:
        wanted, taps = self.plan(status)
        for name in sorted(self.held - wanted):
            pygame.event.post(_key(pygame.KEYUP, name))
        for name in sorted(wanted - self.held):
            pygame.event.post(_key(pygame.KEYDOWN, name))
        for name in taps:
            pygame.event.post(_key(pygame.KEYDOWN, name))
            pygame.event.post(_key(pygame.KEYUP, name))
        self.held = set(wanted)
        self.phases.append(status.phase)
        if status.phase == "rec":  # the last word before a frame is played is what counts
            self.keys_at[(status.episode, status.step)] = frozenset(wanted | set(taps))
        return pygame.event.get()


def _key(kind: int, name: str) -> pygame.event.Event:
    return pygame.event.Event(kind, key=pygame.key.key_code(name), mod=0, unicode="",
                              scancode=0)


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    """One real writer for this module's sessions (each env has its own dataset folder)."""
    root = tmp_path_factory.mktemp("play")
    process = WriterProcess(free_endpoint(), root / "data", root / "writer.log").start()
    yield process
    process.stop()


def _settings(env_id: str, endpoint: str, data_dir, **extra) -> PlaySettings:
    choice = resolve_env(env_id)
    values = {"fps": FPS, "buffer_bytes": 64 << 20, "drain_timeout": 30, **extra}
    return PlaySettings(choice=choice, endpoint=endpoint, data_dir=data_dir,
                        keymap=load_keymap(None, choice.platform), base_seed=21, codec="png",
                        quality=95, collector="test", **values)


def _session_file(data_dir, env_id) -> dict:
    (path,) = (data_dir / env_id / ".meta" / "sessions").glob("*.json")
    return json.loads(path.read_text())


def test_atari_keys_pause_discard_and_quit(writer):
    """Episode 0 is cut by max_steps (a pause in the middle), episode 1 is discarded,
    episode 2 is ended by Esc: two episodes in the dataset, each action what the keys meant."""
    endpoint, data_dir = writer.endpoint, writer.data_dir
    paused_ticks = []

    def plan(s: PlayStatus):
        if s.phase == "ready":
            return set(), ["space"]
        if s.phase == "paused":
            paused_ticks.append(s.tick)
            # keys held and tapped while paused must not leak into the recording
            return {"left", "space"}, (["p"] if len(paused_ticks) == 12 else ["right"])
        if s.episode == 0:
            if s.step == 20 and not paused_ticks:
                return {"left"}, ["p"]
            return ({"right"} if s.step < 10 else {"left", "space"} if s.step < 20 else
                    {"up", "right", "space"} if s.step < 30 else set()), \
                (["space"] if s.step == 35 else ["h"] if s.step in (3, 6) else [])
        if s.episode == 1:
            return {"right"}, (["backspace"] if s.step == 8 else [])
        return {"space"}, (["escape"] if s.step == 5 else [])

    player = Player(plan)
    result = play(_settings("BreakoutNoFrameskip-v4", endpoint, data_dir, max_steps=40),
                  events=player)
    assert (result.progress.episodes, result.discarded) == (1, 1)
    assert result.progress.steps == 40 + 8 + 5 == result.progress.steps_durable
    assert result.progress.unconfirmed == 0 and result.progress.steps_dropped == 0
    assert len(paused_ticks) == 12

    ds = load(data_dir, "BreakoutNoFrameskip-v4")
    episodes = assert_exact_episodes(ds)
    by_index = {rows[0]["episode_index"]: rows for rows in episodes.values()}
    assert sorted(by_index) == [0, 2]  # episode 1 was discarded
    meaning = {frozenset(): 0, frozenset({"space"}): 1, frozenset({"right"}): 2,
               frozenset({"right", "h"}): 2,  # H only hides the HUD
               frozenset({"left"}): 3, frozenset({"left", "space"}): 3,  # nearest: LEFT
               frozenset({"up", "right", "space"}): 2}
    for index, rows in by_index.items():
        expected = [meaning[player.keys_at[(index, r["step"])]] for r in rows[:-1]]
        assert [r["action"] for r in rows[:-1]] == expected
        assert rows[0]["seed"] == episode_seed(21, index)
    assert len(by_index[0]) == 41 and by_index[0][-2]["truncated"]
    assert len(by_index[2]) == 6 and not by_index[2][-2]["truncated"]
    # The pause shows in the timestamps (frame 20 was shown again after it), and no frame was
    # recorded while paused.
    stamps = [r["timestamp"] for r in by_index[0]]
    gaps = np.diff(stamps)
    assert gaps.min() > 0 and np.argmax(gaps) == 19 and gaps.max() > 12 / FPS

    state = _session_file(data_dir, "BreakoutNoFrameskip-v4")
    assert [(e["episode_index"], e["outcome"]) for e in state["episodes"]] == [
        (0, "truncated"), (1, "discarded"), (2, "aborted")]
    assert state["start"]["player"] == "human"  # and the keys it played with, by name
    assert state["start"]["key_bindings"]["space"] == "FIRE"
    assert state["start"]["key_bindings"]["left"] == "LEFT"
    card = (data_dir / "BreakoutNoFrameskip-v4" / "README.md").read_text()
    assert "key bindings of human play:" in card and "`space` FIRE" in card
    assert (data_dir / "BreakoutNoFrameskip-v4" / ".discarded").is_dir()

    # Exact frames: replaying the recorded actions from the stored seed gives the recorded
    # images (PNG is lossless), so each row's image is the frame its action was chosen on.
    env = make_env(resolve_env("BreakoutNoFrameskip-v4"))
    rows = by_index[0]
    observation, _ = env.reset(seed=rows[0]["seed"])
    images = [r["image"] for r in ds if r["episode_index"] == 0]
    for row, image in zip(rows, images, strict=True):
        assert np.array_equal(np.asarray(image), observation), row["step"]
        if not row["is_last"]:
            observation, *_ = env.step(row["action"])
    env.close()


GENESIS = ["B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z"]


def test_retro_genesis_buttons(writer):
    endpoint, data_dir = writer.endpoint, writer.data_dir
    steps = [set(), {"right", "x"}, {"tab"}, {"return"}, {"z", "c", "a", "s", "d"},
             {"up", "down", "left"}, {"q", "w"}]

    def plan(s: PlayStatus):
        if s.phase == "ready":
            return set(), ["space"]
        return steps[min(s.step // 4, len(steps) - 1)], (["escape"] if s.step == 30 else [])

    player = Player(plan)
    result = play(_settings("Airstriker-Genesis", endpoint, data_dir), events=player)
    assert result.progress.steps == 30 == result.progress.steps_durable
    ds = load(data_dir, "Airstriker-Genesis-v0")
    (rows,) = assert_exact_episodes(ds).values()
    buttons = {"right": "RIGHT", "x": "A", "tab": "MODE", "return": "START", "z": "B", "c": "C",
               "a": "X", "s": "Y", "d": "Z", "up": "UP", "down": "DOWN", "left": "LEFT"}
    for row in rows[:-1]:
        keys = player.keys_at[(0, row["step"])]
        names = {buttons[k] for k in keys if k in buttons}
        if {"UP", "DOWN"} <= names:
            names -= {"UP", "DOWN"}
        assert row["action"] == [int(b in names) for b in GENESIS], row["step"]
    assert _session_file(data_dir, "Airstriker-Genesis-v0")["episodes"][0]["outcome"] == \
        "aborted"


def test_vizdoom_buttons_and_window_close(writer):
    endpoint, data_dir = writer.endpoint, writer.data_dir
    steps = [set(), {"left"}, {"right"}, {"left ctrl"}, {"left alt", "left"}, {"up", "space"}]

    def plan(s: PlayStatus):
        if s.phase == "ready":
            return set(), ["space"]
        return steps[min(s.step // 5, len(steps) - 1)], []

    player = Player(plan)

    def close_window(status: PlayStatus):
        events = player(status)
        if status.phase == "rec" and status.step == 30:
            events.append(pygame.event.Event(pygame.QUIT))  # the window's close button
        return events

    result = play(_settings("VizdoomBasic-v1", endpoint, data_dir), events=close_window)
    ds = load(data_dir, "VizdoomBasic-v1")
    episodes = assert_exact_episodes(ds)
    labels = ["NOOP", "ATTACK", "MOVE_RIGHT", "MOVE_LEFT"]  # the wrapper's order
    meaning = {frozenset(): "NOOP", frozenset({"left"}): "MOVE_LEFT",
               frozenset({"right"}): "MOVE_RIGHT", frozenset({"left ctrl"}): "ATTACK",
               frozenset({"left alt", "left"}): "MOVE_LEFT", frozenset({"up", "space"}): "NOOP"}
    recorded = [(r["episode_index"], r["step"], labels[r["action"]])
                for rows in episodes.values() for r in rows[:-1]]
    assert recorded and all(meaning[player.keys_at[(e, s)]] == label
                            for e, s, label in recorded)
    assert result.progress.steps == len(recorded) == result.progress.steps_durable
    info = json.loads((data_dir / "VizdoomBasic-v1" / ".meta" / "info.json").read_text())
    assert info["environment"]["action_labels"] == labels


def _tap_script(at: Callable[[PlayStatus], list[str]]):
    """An event source that taps the keys `at(status)` names."""
    def events(status: PlayStatus) -> list[pygame.event.Event]:
        for name in at(status):
            pygame.event.post(_key(pygame.KEYDOWN, name))
            pygame.event.post(_key(pygame.KEYUP, name))
        return pygame.event.get()
    return events


def test_a_full_buffer_becomes_a_gap_and_the_game_keeps_its_pace(tmp_path):
    """No writer answers: the 1 MiB resend buffer fills after a few 100 KB frames, and every
    later frame is counted as a gap while the game goes on at its pace (it never waits)."""
    ticks = []

    def at(s: PlayStatus) -> list[str]:
        ticks.append(time.perf_counter())
        return ["space"] if s.phase == "ready" else ["escape"] if s.step == 100 else []

    settings = _settings("BreakoutNoFrameskip-v4", free_endpoint(), tmp_path, fps=100.0,
                         buffer_bytes=1 << 20, drain_timeout=0.3)
    result = play(settings, events=_tap_script(at))
    progress = result.progress
    assert progress.steps + progress.steps_dropped == 100
    assert 0 < progress.steps < 12 and progress.steps_durable == 0
    assert progress.unconfirmed > 0
    assert np.median(np.diff(ticks)) == pytest.approx(0.01, rel=0.2)
    lines = hud_lines(HudInfo(phase="rec", target_fps=100, fps=99.0, connected=False,
                              backlog=progress.unconfirmed, gaps=progress.steps_dropped))
    assert (f"durable 0  gaps {progress.steps_dropped}", RED) in lines
    assert (f"writer NOT ANSWERING  backlog {progress.unconfirmed}", RED) in lines


def test_a_long_pause_keeps_the_session_open(tmp_path):
    """A writer that closes silent sessions after 0.5 s and exits once idle (as an auto-started
    writer does after 2 s): a 1.5 s pause must not end the session."""
    root = tmp_path / "w"
    writer = WriterProcess(free_endpoint(), root / "data", tmp_path / "w.log",
                           "--session-timeout", "0.5", "--exit-when-idle", "0.5").start()
    try:
        paused = []

        def at(s: PlayStatus) -> list[str]:
            if s.phase == "ready":
                return ["space"]
            if s.phase == "rec" and s.step == 10 and not paused:
                paused.append(time.monotonic())
                return ["p"]
            if s.phase == "paused" and time.monotonic() - paused[0] > 1.5:
                return ["p"]
            return ["escape"] if s.step == 20 else []

        settings = _settings("BreakoutNoFrameskip-v4", writer.endpoint, writer.data_dir,
                             fps=60.0, keepalive=0.2)
        result = play(settings, events=_tap_script(at))
    finally:
        writer.stop()
    assert result.progress.steps == 20 == result.progress.steps_durable
    assert result.progress.unconfirmed == 0
    assert "sealed as aborted" not in (tmp_path / "w.log").read_text()


def test_cli_window_with_agent_and_bad_keymap(writer, tmp_path):
    """The CLI opens the window without --headless (an agent plays it here) and prints the
    summary; a bad key map stops it before anything starts."""
    data_dir = writer.data_dir
    cmd = [sys.executable, "-m", "recorder.cli", "ALE/Pong-v5", "--endpoint", writer.endpoint,
           "--data-dir", str(data_dir)]
    bad = tmp_path / "keys.toml"
    bad.write_text('[atari]\nspace = "FIER"\n')
    result = record_here(*cmd[3:], "--keymap", str(bad))  # refused before anything starts
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"keymap {bad} [atari]: unknown atari control 'FIER' for key 'space'" in result.stderr
    assert not (data_dir / "ALE_Pong-v5").exists()
    started = time.monotonic()
    result = subprocess.run([*cmd, "--agent", "random", "--episodes", "2", "--max-steps", "25",
                             "--fps", "200", "--seed", "4"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "episodes: 2  frames sent: 50  frames durable: 50  gaps (dropped frames): 0" in \
        result.stdout
    assert "pacing: 200 fps target" in result.stdout
    assert time.monotonic() - started < 60
    episodes = assert_exact_episodes(load(data_dir, "ALE_Pong-v5"))
    assert sorted(r[0]["seed"] for r in episodes.values()) == sorted(
        episode_seed(4, e) for e in range(2))


def test_cli_list(tmp_path):
    result = record_here("--list", "airstriker")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Stable-Retro (fps: the console's): 1 id",
                                          "  Airstriker-Genesis-v0"]


@pytest.mark.parametrize("flags", [["--headless"], ["--agent", "random", "--workers", "2"]])
def test_cli_refuses_impossible_combinations(endpoint, data_dir, flags):
    result = record_here("BreakoutNoFrameskip-v4", "--endpoint", endpoint, "--data-dir",
                         str(data_dir), *flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
