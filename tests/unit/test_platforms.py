"""The platform registry is the one place that knows the platforms: every registered platform
answers the whole interface with a real env, ids resolve through it, and a platform registered
here (a toy around CartPole) is picked up by resolution, listing, key maps and envs with no other
edit. Nothing outside recorder/envs/ names a platform."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from recorder.envs import (
    EnvChoice,
    Platform,
    action_labels,
    frame_of,
    make_env,
    platform_named,
    platforms,
    resolve_env,
    resolver_for,
)
from recorder.envs.base import count_ids, heading
from recorder.envs.registry import fps_defaults, platform_of_env, register, unregister
from recorder.listing import gather, listing_lines
from recorder.play.keymaps import CONTROLS, default_keymap, load_keymap
from shared.errors import EnvNotFound, RomMissing, UsageError
from shared.version import PLATFORM_PACKAGES, TRACKED_PACKAGES, platform_package

ROOT = Path(__file__).resolve().parents[2]


def _first_playable(platform: Platform) -> str:
    return next(i for i, missing in platform.catalogue().items() if not missing)


@pytest.mark.parametrize("platform", platforms(), ids=lambda p: p.name)
def test_every_platform_answers_the_interface_with_a_real_env(platform):
    assert isinstance(platform, Platform) and platform_named(platform.name) is platform
    assert platform.default_fps > 0 and platform.title
    assert set(platform.default_keys.values()) <= set(platform.controls)
    assert default_keymap(platform.name).platform == platform.name
    assert platform.packages and platform.packages == PLATFORM_PACKAGES[platform.name]
    assert set(platform.packages) <= set(TRACKED_PACKAGES)

    env_id = _first_playable(platform)
    choice = resolve_env(env_id)
    assert choice == EnvChoice(platform.name, env_id, platform.env_kwargs({}))
    env = make_env(choice)
    try:
        observation, _ = env.reset(seed=1)
        assert platform_of_env(env) is platform
        frame = frame_of(observation, env)
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.flags.c_contiguous
        assert np.array_equal(frame, platform.frame(observation, env))
        labels = action_labels(env, platform.name)
        assert labels and all(isinstance(label, str) for label in labels)
        resolve = resolver_for(env, platform.name)
        for control in ("", *platform.controls):  # any control, bound or not, is a legal action
            action = resolve(frozenset({control} - {""}))
            assert env.action_space.contains(action), (control, action)
        env.step(resolve(frozenset()))
    finally:
        env.close()


def test_ids_resolve_with_aliases_and_errors_that_help():
    assert resolve_env("Airstriker-Genesis") == EnvChoice(
        "retro", "Airstriker-Genesis-v0", {"render_mode": "rgb_array"})
    assert resolve_env("Airstriker-Genesis", state="Level1").kwargs["state"] == "Level1"
    assert resolve_env("ALE/Pong-v5").platform == "atari"
    with pytest.raises(EnvNotFound, match=r"VizDoom ids now end in -v1, use 'VizdoomBasic-v1'"):
        resolve_env("VizdoomBasic-v0")
    with pytest.raises(EnvNotFound, match=r"did you mean .*ALE/Breakout-v5"):
        resolve_env("Breakout")
    with pytest.raises(EnvNotFound, match=r"`gymrec-record --list` shows all"):
        resolve_env("qqqqqqqqqqqqqqqqqqqq")
    with pytest.raises(RomMissing, match=r"no ROM for SuperMarioBros-Nes-v0: .*retro\.import"):
        resolve_env("SuperMarioBros-Nes")
    with pytest.raises(UsageError, match=r"unknown platform 'snes' \(one of atari, retro"):
        make_env(EnvChoice("snes", "X-v0", {}))


def test_the_writer_names_each_platforms_package_from_the_shared_table():
    from writer.hub.card import Published, card_text

    start = {"session": "a" * 32, "env_id": "Airstriker-Genesis-v0", "platform": "retro",
             "env_kwargs": {}, "fps": 60.0, "codec": "png", "quality": 95,
             "frame_shape": [224, 320, 3], "observation_space": "Box", "max_steps": 0,
             "action_space": {"type": "MultiBinary", "n": 12}, "action_labels": ["B"] * 12,
             "versions": {"stable-retro": "1"}, "recorder_version": "0"}
    text = card_text("me/x", [{"start": start, "gaps": []}], Published())
    assert "| platform | retro (stable-retro) |" in text and "- stable-retro\n" in text
    assert platform_package("vizdoom") == "vizdoom" and platform_package("toy") is None


def test_nothing_outside_recorder_envs_names_a_platform():
    """Platform names and if-chains live in recorder/envs/ (and the shared package table)."""
    pattern = re.compile(r"""["'](atari|retro|vizdoom)["']|\b(ATARI|RETRO|VIZDOOM)\b""")
    found = []
    for path in sorted([*ROOT.glob("recorder/**/*.py"), *ROOT.glob("writer/**/*.py"),
                        *ROOT.glob("shared/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("recorder/envs/") or rel == "shared/version.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []


# -- a platform added by a test, with no other edit -------------------------------------------

class Toy(Platform):
    """CartPole under another name: ids ToyCartPole-v0 (alias ToyCartPole), two controls."""

    name = "toy"
    title = "Toy"
    module = "gymnasium"
    default_fps = 50.0
    controls = ("LEFT", "RIGHT")
    default_keys = {"left": "LEFT", "right": "RIGHT"}

    def ids(self) -> list[str]:
        return ["ToyCartPole-v0"]

    def canonical_id(self, env_id: str, ids: list[str]) -> str | None:
        return next((i for i in (env_id, f"{env_id}-v0") if i in ids), None)

    def make(self, env_id: str, kwargs: Mapping[str, Any]) -> Any:
        return gym.make("CartPole-v1", **kwargs)

    def action_labels(self, env: Any) -> list[str]:
        return ["LEFT", "RIGHT"]

    def resolver(self, env: Any) -> Callable[[frozenset[str]], Any]:
        return lambda controls: int(controls == {"RIGHT"})

    def summary(self, catalogue: Mapping[str, str]) -> list[str]:
        return [heading(self, count_ids(len(catalogue)))]


@pytest.fixture
def toy():
    platform = Toy()
    register(platform)
    try:
        yield platform
    finally:
        unregister(platform.name)


def test_a_registered_platform_is_picked_up_everywhere(toy, tmp_path):
    choice = resolve_env("ToyCartPole")
    assert choice == EnvChoice("toy", "ToyCartPole-v0", {"render_mode": "rgb_array"})
    assert "Toy 50" in fps_defaults()
    with pytest.raises(EnvNotFound, match="did you mean ToyCartPole-v0"):
        resolve_env("ToyCartPol")

    catalogues = gather()
    assert list(catalogues)[-1] == "toy"
    assert "Toy (fps: 50): 1 id" in listing_lines(catalogues)
    assert listing_lines(catalogues, "cartpole") == ["Toy (fps: 50): 1 id",
                                                     "  ToyCartPole-v0"]

    assert "toy" in CONTROLS and CONTROLS["toy"] == ("LEFT", "RIGHT")
    path = tmp_path / "keys.toml"
    path.write_text('[toy]\nd = "RIGHT"\n[atari]\nw = "UP"\n')
    keys = load_keymap(path, "toy")
    assert keys.keys_for("RIGHT") == ["d", "right"] and keys.keys_for("LEFT") == ["left"]
    path.write_text('[toy]\nd = "FIRE"\n')
    with pytest.raises(UsageError, match="unknown toy control 'FIRE'"):
        load_keymap(path, "atari")

    env = make_env(choice)
    try:
        observation, _ = env.reset(seed=0)
        frame = frame_of(observation, env)  # a vector observation: the picture is a render
        assert frame.shape == (400, 600, 3) and platform_of_env(env) is toy
        assert action_labels(env, "toy") == ["LEFT", "RIGHT"]
        assert resolver_for(env, "toy")(frozenset({"RIGHT"})) == 1
    finally:
        env.close()


def test_unregistered_platforms_are_gone_and_names_are_unique(toy):
    with pytest.raises(UsageError, match="'toy' is already registered"):
        register(Toy())
    with pytest.raises(UsageError, match="'atari' is built in"):
        unregister("atari")
    unregister("toy")
    with pytest.raises(EnvNotFound):
        resolve_env("ToyCartPole-v0")
    assert "toy" not in CONTROLS and [p.name for p in platforms()] == ["atari", "retro",
                                                                       "vizdoom"]
