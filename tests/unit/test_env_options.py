"""--env-option values, which envs take which options, each env's own fps and its effective
settings (real envs of every platform)."""

from __future__ import annotations

import pytest

from recorder.env_options import parse_env_options
from recorder.envs import env_settings, make_env, native_fps, resolve_env
from shared.errors import UsageError


def test_values_are_json_then_toml_then_plain_text():
    assert parse_env_options(["frameskip=1", "repeat_action_probability=0.0",
                              "full_action_space=true", "state=Level1", "sizes=[1, 2]",
                              "name='a b'", "big=1_000"]) == {
        "frameskip": 1, "repeat_action_probability": 0.0, "full_action_space": True,
        "state": "Level1", "sizes": [1, 2], "name": "a b", "big": 1000}


@pytest.mark.parametrize("item, says", [
    ("frameskip", "expected KEY=VALUE"), ("=1", "expected KEY=VALUE"),
    ("a-b=1", "expected KEY=VALUE"), ("x=NaN", "not a finite number"),
    ("x=Infinity", "not a finite number")])
def test_malformed_options_are_one_line(item, says):
    with pytest.raises(UsageError, match=says):
        parse_env_options([item])


def test_an_option_given_twice_is_refused():
    with pytest.raises(UsageError, match="given twice"):
        parse_env_options(["frameskip=1", "frameskip=2"])


@pytest.mark.parametrize("env_id, options, says", [
    ("ALE/MsPacman-v5", {"framesk": 1}, "--env-option framesk: ALE/MsPacman-v5 takes no such"),
    ("Airstriker-Genesis", {"foo": 1}, "--env-option foo: Airstriker-Genesis-v0 takes no such"),
    ("Airstriker-Genesis", {"state": "Level9"}, "has no save state 'Level9'.*Level1"),
    ("BreakoutNoFrameskip-v4", {"render_mode": "human"}, "always renders to arrays"),
])
def test_unknown_options_are_refused_before_any_env_is_made(env_id, options, says):
    with pytest.raises(UsageError, match=says):
        resolve_env(env_id, options=options)


def test_state_is_only_for_stable_retro():
    with pytest.raises(UsageError, match="--state is a Stable-Retro save state"):
        resolve_env("BreakoutNoFrameskip-v4", state="Level1")
    assert resolve_env("Airstriker-Genesis", state="Level1").kwargs["state"] == "Level1"


def test_a_bad_option_value_is_one_line_when_the_env_is_made():
    choice = resolve_env("ALE/MsPacman-v5", options={"frameskip": "x"})
    with pytest.raises(UsageError, match="cannot be made with options .*frameskip"):
        make_env(choice)


@pytest.mark.parametrize("env_id, options, fps", [
    ("BreakoutNoFrameskip-v4", {}, 60.0),
    ("ALE/Breakout-v5", {}, 15.0),
    ("ALE/Breakout-v5", {"frameskip": 1}, 60.0),
    ("Breakout-v4", {}, 20.0),  # frameskip drawn from 2, 3, 4
    ("Airstriker-Genesis", {}, 59.92274340431231),  # the emulator's own rate
    ("VizdoomBasic-v1", {}, 35.0),
    ("VizdoomBasic-v1", {"frame_skip": 4}, 8.75),
])
def test_each_env_runs_at_its_own_rate(env_id, options, fps):
    env = make_env(resolve_env(env_id, options=options))
    try:
        assert native_fps(env) == pytest.approx(fps)
    finally:
        env.close()


def test_effective_settings_name_what_the_env_was_made_with():
    env = make_env(resolve_env("ALE/MsPacman-v5", options={
        "frameskip": 1, "repeat_action_probability": 0.0, "full_action_space": True}))
    try:
        found = env_settings(env)
        assert found["frameskip"] == 1 and found["repeat_action_probability"] == 0.0
        assert found["full_action_space"] is True and found["actions"] == 18
        assert found["game"] == "ms_pacman"
    finally:
        env.close()
    env = make_env(resolve_env("Airstriker-Genesis"))
    try:
        found = env_settings(env)
        assert found["state"] == "Level1.state" and found["system"] == "Genesis"
        assert found["players"] == 1 and "RIGHT" in found["buttons"]
    finally:
        env.close()
    env = make_env(resolve_env("VizdoomBasic-v1"))
    try:
        found = env_settings(env)
        assert found["resolution"] == [320, 240] and found["ticrate"] == 35
        assert found["buttons"] == ["MOVE_LEFT", "MOVE_RIGHT", "ATTACK"]
    finally:
        env.close()
