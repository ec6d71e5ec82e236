"""Keys → controls → actions as plain functions over the envs' own action meanings and button
names; key map files validated with errors that name the bad entry; pacing and input state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pygame
import pytest
import stable_retro as retro
import vizdoom

from recorder.envs import action_labels, atari
from recorder.envs import vizdoom as doom
from recorder.envs.atari import atari_action
from recorder.envs.retro import CONTROLS as RETRO_CONTROLS
from recorder.envs.retro import retro_action
from recorder.envs.vizdoom import (
    all_doom_combos,
    doom_action,
    doom_buttons,
    doom_combo_labels,
    doom_combos,
)
from recorder.listing import listing_lines
from recorder.pacing import FramePacer
from recorder.play.input import PAUSE, QUIT, START, InputState
from recorder.play.keymaps import default_keymap, load_keymap
from shared.errors import EnvNotFound, UsageError
from shared.spaces import describe_space

K = pygame
ATARI, RETRO, VIZDOOM = "atari", "retro", "vizdoom"


def _keys(keymap, *codes):
    return keymap.controls(codes)


@pytest.fixture(scope="module")
def atari_meanings():
    atari.PLATFORM.register_ids()
    meanings = {}
    for name, kwargs in [("full", {"full_action_space": True}), ("breakout", {}),
                         ("pong", {"id": "ALE/Pong-v5"})]:
        env = gym.make(kwargs.pop("id", "BreakoutNoFrameskip-v4"), **kwargs)
        meanings[name] = env.unwrapped.get_action_meanings()
        env.close()
    return meanings


def test_atari_combinations_use_the_games_own_actions(atari_meanings):
    keys = default_keymap(ATARI)
    full, breakout, pong = (atari_meanings[n] for n in ("full", "breakout", "pong"))
    up_right_fire = _keys(keys, K.K_UP, K.K_RIGHT, K.K_SPACE)
    assert full[atari_action(up_right_fire, full)] == "UPRIGHTFIRE"
    assert full[atari_action(_keys(keys, K.K_DOWN, K.K_LEFT), full)] == "DOWNLEFT"
    assert full[atari_action(_keys(keys, K.K_LEFT, K.K_RIGHT, K.K_UP), full)] == "UP"
    # Breakout has NOOP FIRE RIGHT LEFT: the nearest legal action, directions before fire.
    assert breakout[atari_action(up_right_fire, breakout)] == "RIGHT"
    assert breakout[atari_action(_keys(keys, K.K_UP), breakout)] == "NOOP"
    assert breakout[atari_action(_keys(keys, K.K_SPACE, K.K_UP), breakout)] == "FIRE"
    assert breakout[atari_action(_keys(keys, K.K_LEFT, K.K_RIGHT, K.K_SPACE), breakout)] == "FIRE"
    assert pong[atari_action(up_right_fire, pong)] == "RIGHTFIRE"
    assert atari_action(frozenset(), full) == 0
    # Every combination of the five controls gives a legal action on every game.
    controls = ["UP", "DOWN", "LEFT", "RIGHT", "FIRE"]
    for mask in range(32):
        held = {c for i, c in enumerate(controls) if mask >> i & 1}
        for meanings in (full, breakout, pong):
            assert 0 <= atari_action(held, meanings) < len(meanings)


GENESIS = ["B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z"]


def test_retro_keys_follow_the_consoles_button_names():
    keys = default_keymap(RETRO)

    def pressed(buttons, *codes):
        action = retro_action(_keys(keys, *codes), buttons)
        assert action.dtype == np.int8 and set(action.tolist()) <= {0, 1}
        return {b for b, on in zip(buttons, action, strict=True) if on}

    assert pressed(GENESIS, K.K_UP, K.K_RIGHT, K.K_x) == {"UP", "RIGHT", "A"}
    assert pressed(GENESIS, K.K_z) == {"B"}
    assert pressed(GENESIS, K.K_TAB, K.K_RETURN) == {"MODE", "START"}  # Select is MODE here
    assert pressed(GENESIS, K.K_c, K.K_a, K.K_s, K.K_d) == {"C", "X", "Y", "Z"}
    assert pressed(GENESIS, K.K_UP, K.K_DOWN, K.K_LEFT) == {"LEFT"}  # opposites cancel
    assert pressed(GENESIS, K.K_q, K.K_w) == set()  # no shoulder buttons on a Genesis
    snes = ["B", "Y", "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A", "X", "L", "R"]
    assert pressed(snes, K.K_TAB, K.K_q, K.K_a) == {"SELECT", "L", "X"}
    nes = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]
    assert pressed(nes, K.K_z, K.K_x, K.K_c) == {"B", "A"}


def test_retro_vocabulary_covers_every_core():
    retro.data.init_core_info(retro.data.path())
    names = {b for info in retro.data.EMU_INFO.values() for b in info["buttons"] if b}
    assert names <= set(RETRO_CONTROLS)
    assert GENESIS == retro.data.EMU_INFO["Genesis"]["buttons"]


def test_doom_vocabulary_is_vizdooms_binary_buttons():
    binary = {b.name for b in vizdoom.Button.__members__.values()
              if not vizdoom.is_delta_button(b)}
    assert binary == set(doom.CONTROLS)


def _doom(env_id):
    doom.PLATFORM.register_ids()
    env = gym.make(env_id)
    inner = env.unwrapped
    available = [b.name for b in inner.game.get_available_buttons()]
    binary = [b for b in available if not b.endswith("_DELTA")]
    combos = doom_combos(inner.button_map, binary) if inner.max_buttons_pressed else None
    space = describe_space(env.action_space)
    labels = action_labels(env, VIZDOOM)
    env.close()
    return available, space, combos, labels


def test_doom_basic_arrows_strafe_and_ctrl_attacks():
    available, space, combos, labels = _doom("VizdoomBasic-v1")
    assert available == ["MOVE_LEFT", "MOVE_RIGHT", "ATTACK"]
    # The wrapper's Discrete actions follow itertools.product: action 1 is the *last* button.
    assert labels == ["NOOP", "ATTACK", "MOVE_RIGHT", "MOVE_LEFT"]
    assert combos == all_doom_combos(available, 1)
    keys = default_keymap(VIZDOOM)

    def label(*codes):
        return labels[doom_action(_keys(keys, *codes), available, space, combos)]

    assert label() == "NOOP"
    assert label(K.K_LEFT) == "MOVE_LEFT"  # no turning in Basic: turn keys move sideways
    assert label(K.K_LALT, K.K_RIGHT) == "MOVE_RIGHT"
    assert label(K.K_RCTRL) == "ATTACK"
    assert label(K.K_LEFT, K.K_LCTRL) == "MOVE_LEFT"  # one button at a time: movement first
    assert label(K.K_UP, K.K_SPACE, K.K_1) == "NOOP"  # Basic has none of these
    assert label(K.K_LEFT, K.K_RIGHT, K.K_LCTRL) == "ATTACK"


def test_doom_scenarios_with_more_buttons():
    available, space, combos, labels = _doom("VizdoomDeadlyCorridor-v1")
    keys = default_keymap(VIZDOOM)

    def label(*codes):
        return labels[doom_action(_keys(keys, *codes), available, space, combos)]

    assert label(K.K_UP) == "MOVE_FORWARD"
    assert label(K.K_LEFT) == "TURN_LEFT"
    assert label(K.K_LALT, K.K_LEFT) == "MOVE_LEFT"
    assert label(K.K_UP, K.K_LEFT) == "MOVE_FORWARD"

    available, space, combos, _ = _doom("VizdoomFreedoom1E1M1-S3-v0")
    assert space == {"type": "MultiBinary", "n": 19} and combos is None

    def pressed(*codes):
        action = doom_action(_keys(keys, *codes), available, space)
        return {b for b, on in zip(available, action, strict=True) if on}

    assert pressed(K.K_UP, K.K_LEFT, K.K_LCTRL, K.K_LSHIFT, K.K_3) == {
        "MOVE_FORWARD", "TURN_LEFT", "ATTACK", "SPEED", "SELECT_WEAPON3"}
    assert pressed(K.K_RALT, K.K_RIGHT, K.K_SPACE, K.K_7) == {"MOVE_RIGHT", "USE",
                                                              "SELECT_WEAPON7"}
    assert pressed(K.K_LALT) == set()

    available, space, combos, labels = _doom("VizdoomDeathmatch-v1")
    assert space["type"] == "Dict"
    action = doom_action(_keys(keys, K.K_UP, K.K_LCTRL), available, space, combos)
    assert labels[action["binary"]] == "MOVE_FORWARD"
    assert action["continuous"].tolist() == [0.0, 0.0, 0.0]


def test_doom_delta_buttons_stand_in_for_missing_ones():
    pressed, deltas = doom_buttons({"TURN_LEFT", "MOVE_FORWARD", "ATTACK"},
                                   ["TURN_LEFT_RIGHT_DELTA", "MOVE_FORWARD", "ATTACK"])
    assert pressed == {"MOVE_FORWARD", "ATTACK"} and deltas == {"TURN_LEFT_RIGHT_DELTA": -5.0}
    box = doom_action({"TURN_RIGHT"}, ["TURN_LEFT_RIGHT_DELTA"],
                      {"type": "Box", "shape": [1], "dtype": "float32"})
    assert box.tolist() == [5.0]
    assert doom_combo_labels(all_doom_combos(["A", "B"], 2), ["A", "B"]) == [
        "NOOP", "B", "A", "A+B"]


# -- key map files ----------------------------------------------------------------------------

def _write(tmp_path, text):
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return path


def test_keymap_file_changes_and_removes_bindings(tmp_path):
    path = _write(tmp_path, '[atari]\n"left ctrl" = "fire"\nspace = "none"\nw = "UP"\n'
                            '[vizdoom]\nctrl = "none"\ne = "USE"\n')
    atari = load_keymap(path, ATARI)
    assert _keys(atari, K.K_LCTRL, K.K_w) == {"FIRE", "UP"}
    assert _keys(atari, K.K_SPACE) == set()
    assert _keys(atari, K.K_LEFT) == {"LEFT"}  # defaults not named in the file stay
    doom = load_keymap(path, VIZDOOM)
    assert _keys(doom, K.K_LCTRL, K.K_RCTRL) == set() and _keys(doom, K.K_e) == {"USE"}
    assert load_keymap(path, RETRO) == default_keymap(RETRO)


@pytest.mark.parametrize(("text", "words"), [
    ('[atari]\nspcae = "FIRE"\n', "[atari]: unknown key name 'spcae'"),
    ('[atari]\nspace = "JUMP"\n', "unknown atari control 'JUMP' for key 'space'"),
    ('[vizdoom]\nf = "SHOOT"\n', "unknown vizdoom control 'SHOOT' for key 'f'"),
    ('[retro]\nz = "TRIANGLE"\n', "unknown retro control 'TRIANGLE'"),
    ('[atari]\nescape = "FIRE"\n', "key 'escape' is reserved (quit)"),
    ('[atari]\np = "FIRE"\n', "key 'p' is reserved (pause)"),
    ('[snes]\nz = "B"\n', "unknown table [snes]"),
    ('[atari]\nspace = 3\n', "the control of key 'space' must be a string"),
    ('[atari\nspace = "FIRE"\n', "not valid TOML"),
])
def test_keymap_file_errors_name_the_bad_entry(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_keymap(path, ATARI)  # every table is checked, whichever platform is played
    assert words in str(err.value) and str(path) in str(err.value)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


# -- input state and pacing -------------------------------------------------------------------

def _key(kind, key):
    return pygame.event.Event(kind, key=key, mod=0, unicode="", scancode=0)


def test_input_state_counts_taps_and_queues_commands():
    state = InputState()
    state.process_event(_key(pygame.KEYDOWN, K.K_LEFT))
    state.process_event(_key(pygame.KEYDOWN, K.K_SPACE))
    state.process_event(_key(pygame.KEYUP, K.K_SPACE))  # tapped between two frames
    assert state.frame_keys() == {K.K_LEFT, K.K_SPACE}
    assert state.frame_keys() == {K.K_LEFT}
    state.process_event(_key(pygame.KEYDOWN, K.K_p))
    state.process_event(pygame.event.Event(pygame.QUIT))
    assert state.take_commands() == [START, PAUSE, QUIT] and state.take_commands() == []
    state.process_event(pygame.event.Event(pygame.WINDOWFOCUSLOST))
    assert state.frame_keys() == {K.K_p}  # tapped before the focus went; nothing held now
    assert state.frame_keys() == set()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_pacer_keeps_the_rate_without_drift_and_counts_late_frames():
    clock = FakeClock()
    pacer = FramePacer(50.0, clock=clock, sleep=clock.sleep)
    start = pacer.wait()
    rng = np.random.default_rng(0)
    for _ in range(500):
        clock.now += rng.uniform(0.001, 0.015)  # the work of a frame, always under 20 ms
        pacer.wait()
    assert clock.now - start == pytest.approx(500 / 50.0)  # no drift, however the work varied
    assert pacer.late == 0 and pacer.achieved_fps == pytest.approx(50.0)
    clock.now += 0.025  # a slow frame: late, and the next one catches up within the period
    pacer.wait()
    clock.now += 0.001
    pacer.wait()
    assert pacer.late == 1 and clock.now - start == pytest.approx(502 / 50.0)
    clock.now += 0.5  # a stall: counted once, then the schedule starts again from here
    stalled = pacer.wait()
    assert pacer.late == 2 and pacer.wait() == pytest.approx(stalled + 0.02)
    p50, p99 = pacer.interval_percentiles(50, 99)
    assert p50 == pytest.approx(0.02)


def test_listing_groups_and_filters():
    cat = {ATARI: {"ALE/Breakout-v5": "", "ALE/Pong-v5": "", "PongNoFrameskip-v4": ""},
           RETRO: {"Airstriker-Genesis-v0": "", "SuperMarioBros-Nes-v0": "ROM missing"},
           VIZDOOM: {"VizdoomBasic-v1": "", "VizdoomDoomE1M1-S1-v0": "needs doom.wad",
                     "VizdoomFreedoom1E1M1-S1-v0": ""}}
    text = "\n".join(listing_lines(cat))
    assert "Atari, ale-py (fps: 60/frameskip): 2 games, 3 ids" in text
    assert "Breakout  Pong" in text
    assert "1 of 2 games have their ROM" in text and "Nes 1" in text
    assert "VizdoomDoom<map>-S<skill 1-5>-v0: 1 id, needs doom.wad" in text
    assert "VizDoom (fps: 35/frame_skip)" in text
    found = listing_lines(cat, "MARIO")
    assert found == ["Stable-Retro (fps: the console's): 1 id",
                     "  SuperMarioBros-Nes-v0  (ROM missing)"]
    with pytest.raises(EnvNotFound, match="no env id contains 'zelda'"):
        listing_lines(cat, "zelda")
    assert listing_lines(cat, "doome1") == ["VizDoom (fps: 35/frame_skip): 1 id",
                                            "  VizdoomDoomE1M1-S1-v0  (needs doom.wad)"]
