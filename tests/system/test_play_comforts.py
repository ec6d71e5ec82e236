"""Human play comforts, end to end: the speed keys change the pacing (and the session says so),
a break between episodes records nothing, the HUD sits in a bar outside the game picture, and
the config file's values reach a real recording. Scripted key events under
SDL_VIDEODRIVER=dummy, a real writer, real envs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np
import pygame
import pytest
from click.testing import CliRunner

from recorder.cli import main as record_main
from recorder.envs import resolve_env
from recorder.play.keymaps import load_keymap
from recorder.play.speed import MAX_CHANGES, Speed, SpeedLog
from recorder.play.window import PlaySettings, PlayStatus, play
from shared import protocol as p
from shared.errors import ProtocolError
from tests.support.datasets_check import assert_exact_episodes, episodes_of, load
from tests.support.processes import WriterProcess, free_endpoint
from writer.cli import main as writer_main

BREAKOUT = "BreakoutNoFrameskip-v4"


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    root = tmp_path_factory.mktemp("comforts")
    process = WriterProcess(free_endpoint(), root / "data", root / "writer.log").start()
    yield process
    process.stop()


def _settings(writer: WriterProcess, **extra) -> PlaySettings:
    choice = resolve_env(BREAKOUT)
    values = {"buffer_bytes": 64 << 20, "drain_timeout": 30, **extra}
    return PlaySettings(choice=choice, endpoint=writer.endpoint, data_dir=writer.data_dir,
                        keymap=load_keymap(None, choice.platform), base_seed=5, codec="png",
                        quality=95, collector="test", **values)


def _taps(at: Callable[[PlayStatus], list[str]]):
    """An event source that taps (presses and releases) the keys `at(status)` names."""
    def events(status: PlayStatus) -> list[pygame.event.Event]:
        for name in at(status):
            for kind in (pygame.KEYDOWN, pygame.KEYUP):
                pygame.event.post(pygame.event.Event(kind, key=pygame.key.key_code(name),
                                                     mod=0, unicode="", scancode=0))
        return pygame.event.get()
    return events


def _screen() -> np.ndarray:
    """The window as it is on screen, (H, W, 3)."""
    return pygame.surfarray.array3d(pygame.display.get_surface()).swapaxes(0, 1)


def _sessions(writer: WriterProcess) -> list[dict]:
    folder = writer.data_dir / BREAKOUT / ".meta" / "sessions"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")]


def _new_session(writer: WriterProcess, before: list[dict]) -> dict:
    known = {s["start"]["session"] for s in before}
    (state,) = [s for s in _sessions(writer) if s["start"]["session"] not in known]
    return state


def _episodes(writer: WriterProcess, session: str) -> dict[int, list[dict]]:
    """Episode index → rows (no images), for one session."""
    episodes = episodes_of(load(writer.data_dir, BREAKOUT))
    return {rows[0]["episode_index"]: rows for rows in episodes.values()
            if rows[0]["session_id"] == session}


def _picture_is_the_frame(screen: np.ndarray, frame: np.ndarray, scale: int) -> None:
    """The game picture on screen is exactly the frame (scaled), HUD-free, and the HUD bar is
    below it."""
    height, width = frame.shape[0] * scale, frame.shape[1] * scale
    left = (screen.shape[1] - width) // 2
    shown = screen[:height, left:left + width]
    assert np.array_equal(shown, frame.repeat(scale, 0).repeat(scale, 1))
    assert screen.shape[0] > height + 60  # the bar


def test_speed_keys_change_the_pacing_and_the_session_records_each_change(writer):
    """50 fps; '+' three times at frame 20 (×2: 100 fps); keypad '-' five times at frame 40
    (×2/3: 33.33 fps). The recorded timestamps follow, and the SessionEnd lists both changes.
    At ×1 the picture on screen is the recorded frame itself: the HUD is not over it."""
    shots = {}

    def at(s: PlayStatus) -> list[str]:
        if s.phase == "ready":
            return ["space"]
        if s.step == 10 and 10 not in shots:
            shots[10] = _screen()
        return {20: ["=", "+", "keypad +"], 40: ["-", "keypad -", "-", "keypad -", "-"],
                60: ["escape"]}.get(s.step, [])

    before = _sessions(writer)
    result = play(_settings(writer, fps=50.0, scale=1), events=_taps(at))
    assert result.progress.steps == 60 == result.progress.steps_durable
    assert result.fps_changes == [[0, 20, 100.0], [0, 40, 33.33]]

    state = _new_session(writer, before)
    assert state["start"]["fps"] == 50.0
    assert state["end"]["fps_changes"] == [[0, 20, 100.0], [0, 40, 33.33]]
    (rows,) = _episodes(writer, state["start"]["session"]).values()
    gaps = np.diff([r["timestamp"] for r in rows])  # gaps[k]: frame k to frame k+1
    assert np.median(gaps[2:19]) == pytest.approx(1 / 50, rel=0.25)
    assert np.median(gaps[22:39]) == pytest.approx(1 / 100, rel=0.25)
    assert np.median(gaps[42:59]) == pytest.approx(1 / 33.33, rel=0.25)

    image = np.asarray(load(writer.data_dir, BREAKOUT).filter(
        lambda r: r["session_id"] == state["start"]["session"] and r["step"] == 10)[0]["image"])
    _picture_is_the_frame(shots[10], image, scale=1)


@pytest.mark.parametrize("between", [0.4, "space"])
def test_a_break_between_episodes_records_nothing(writer, between):
    """Three episodes of 8 steps with a break before the 2nd and 3rd: 0.4 s, or until Space
    (tapped on the 15th frame of the break). Nothing is stepped or recorded during a break, the
    Space that ends one is not played as FIRE, and the first frame after it is shown in full."""
    break_ticks: list[int] = []
    shots = {}

    def at(s: PlayStatus) -> list[str]:
        if s.phase == "ready":
            return ["space"]
        if s.phase == "break":
            break_ticks.append(s.tick)
            if between == "space" and len(break_ticks) % 15 == 0:
                return ["space"]
        if s.phase == "rec" and s.episode == 1 and s.step == 3 and not shots:
            shots[3] = _screen()
        return []

    before = _sessions(writer)
    settings = _settings(writer, fps=50.0, scale=2, max_steps=8, episodes=3,
                         between_episodes=between)
    result = play(settings, events=_taps(at))
    assert result.progress.steps == 24 == result.progress.steps_durable
    if between == "space":
        assert len(break_ticks) == 30
    else:  # 0.4 s at 50 fps: about 20 frames each
        assert 30 <= len(break_ticks) <= 50

    state = _new_session(writer, before)
    episodes = _episodes(writer, state["start"]["session"])
    assert sorted(episodes) == [0, 1, 2] and all(len(rows) == 9 for rows in episodes.values())
    for index in (1, 2):
        paused = episodes[index][0]["timestamp"] - episodes[index - 1][-1]["timestamp"]
        # the timestamps are those of paced ticks: allow half a frame of clock jitter
        assert paused >= (0.4 if between != "space" else 15 / 50) - 0.5 / 50
        assert episodes[index][0]["action"] == 0  # NOOP: no key was held
    image = np.asarray(load(writer.data_dir, BREAKOUT).filter(
        lambda r: r["session_id"] == state["start"]["session"] and r["episode_index"] == 1
        and r["step"] == 3)[0]["image"])
    _picture_is_the_frame(shots[3], image, scale=2)
    assert_exact_episodes(load(writer.data_dir, BREAKOUT))


def test_speed_ladder_and_log():
    speed = Speed(15.0)
    assert (speed.fps, speed.label()) == (15.0, "\u00d71")
    assert speed.step(-1) and (speed.fps, speed.label()) == (11.25, "\u00d70.75")
    while speed.step(-1):
        pass
    assert speed.fps == 3.75  # ×0.25 is the slowest
    top = Speed(900.0)
    assert top.step(1) is False and top.fps == 900.0  # ×1.25 would pass 1000 fps
    log = SpeedLog()
    assert log.add(0, 3, 20.0) and log.add(0, 3, 30.0) and log.add(1, 0, 10.0)
    assert log.changes == [[0, 3, 30.0], [1, 0, 10.0]]  # changes at one frame: the last
    full = SpeedLog([[0, i, 15.0] for i in range(MAX_CHANGES)])
    assert full.add(0, MAX_CHANGES, 20.0) is False


def test_fps_changes_on_the_wire():
    end = p.SessionEnd(session="ab" * 16, seq=9, reason="completed", steps_sent=5,
                       steps_dropped=0, fps_changes=[[0, 20, 100.0], [1, 0, 33.33]])
    assert p.from_frames(p.to_frames(end)) == end
    for bad in ([0, 20], [0, -1, 30.0], [0, 1, 0], [0, 1, "fast"], [[0, 1, 2.0]]):
        frames = p.to_frames(dataclasses.replace(end, fps_changes=[bad]))
        with pytest.raises(ProtocolError, match="bad fps_changes"):
            p.from_frames(frames)


def _cli(command, *args: str, config_home, env: dict | None = None):
    """Run a command's real CLI in this process (no process start-up: imports are done)."""
    environ = {"XDG_CONFIG_HOME": str(config_home), "GYMREC_DATA_DIR": None,
               "GYMREC_ENDPOINT": None, **(env or {})}
    return CliRunner().invoke(command, list(args), env=environ)


def test_config_file_flags_and_environment_in_order(tmp_path, writer):
    """The config file in $XDG_CONFIG_HOME is read by both commands: flag > environment
    variable > file > default, as --show-config says and as a real recording does."""
    home, endpoint, data_dir = tmp_path / "config", writer.endpoint, writer.data_dir
    (home / "gymrec").mkdir(parents=True)
    (home / "gymrec" / "config.toml").write_text(
        f'codec = "png"\nscale = 3\nendpoint = "{endpoint}"\ndata_dir = "{data_dir}"\n'
        '[fps]\natari = 24\n[hub]\nprivate = true\n')
    shown = _cli(record_main, BREAKOUT, "--show-config", "--scale", "4", config_home=home,
                 env={"GYMREC_ENDPOINT": "tcp://127.0.0.1:1"})
    assert shown.exit_code == 0, shown.output
    lines = {line.split(" = ")[0]: line for line in shown.stdout.splitlines()}
    config = home / "gymrec" / "config.toml"
    assert lines["codec"].endswith(f"# config {config}") and "= png" in lines["codec"]
    assert lines["scale"].endswith("# flag --scale") and "= 4" in lines["scale"]
    assert lines["endpoint"].endswith("# env GYMREC_ENDPOINT")
    assert lines["quality"].endswith("# default") and "= 95" in lines["quality"]
    assert "= 24" in lines["fps.atari"]
    shown = _cli(writer_main, "--show-config", config_home=home)
    assert shown.exit_code == 0, shown.output
    (private,) = [line for line in shown.stdout.splitlines() if line.startswith("hub.private")]
    assert private.startswith("hub.private = true ") and private.endswith(f"# config {config}")

    # A recording (an agent in the window) takes its codec, endpoint, data folder, scale and
    # fps from the file.
    before = _sessions(writer)
    recorded = _cli(record_main, BREAKOUT, "--agent", "random", "--max-steps", "5",
                    config_home=home)
    assert recorded.exit_code == 0, recorded.output
    assert "pacing: 24 fps target" in recorded.stdout
    start = _new_session(writer, before)["start"]
    assert (start["codec"], start["fps"]) == ("png", 24.0)


def test_a_bad_config_value_is_one_line_and_exit_2(tmp_path):
    """Either command, before anything starts (every bad value: tests/unit/test_settings_file)."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[fps]\natari = 24\nsnes = 60\n")
    for command, args in ((record_main, [BREAKOUT]), (writer_main, [])):
        result = _cli(command, *args, "--config", str(bad), "--data-dir",
                      str(tmp_path / "data"), config_home=tmp_path)
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1
        assert f"config {bad}: unknown key 'fps.snes'" in result.stderr
    assert not (tmp_path / "data").exists()
    result = _cli(record_main, BREAKOUT, "--agent", "random", "--headless",
                  "--between-episodes", "2", config_home=tmp_path)
    assert result.exit_code == 2 and result.stderr == \
        "gymrec-record: --between-episodes is for the window (not --headless)\n"


def test_the_writer_takes_the_cards_license_from_the_config_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[hub]\nlicense = "cc-by-4.0"\n')
    process = WriterProcess(free_endpoint(), tmp_path / "data", tmp_path / "writer.log",
                            "--config", str(config)).start()
    try:
        recorded = _cli(record_main, BREAKOUT, "--agent", "random", "--max-steps", "3",
                        "--fps", "60", "--endpoint", process.endpoint, "--data-dir",
                        str(process.data_dir), config_home=tmp_path / "none")
        assert recorded.exit_code == 0, recorded.output
    finally:
        process.stop()
    card = (process.data_dir / BREAKOUT / "README.md").read_text()
    assert "license: cc-by-4.0" in card, card[:400]
