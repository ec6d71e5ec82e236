"""Atari 2600 games through ale-py: ids such as `BreakoutNoFrameskip-v4` and `ALE/Pong-v5`.

Actions are Discrete, named by `get_action_meanings()` ("UPRIGHTFIRE"); the five controls UP,
DOWN, LEFT, RIGHT, FIRE combine into the game's own action, the nearest legal one when the game
lacks the exact combination (Breakout has no UP).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import xxhash

from recorder.envs.base import (
    GymPlatform,
    StartStateError,
    heading,
    json_safe,
    typed_info,
    wrapped,
)
from recorder.envs.controls import cancel_opposites, nearest
from shared.errors import UsageError

CONTROLS = ("UP", "DOWN", "LEFT", "RIGHT", "FIRE")
PRIORITY = ("UP", "DOWN", "LEFT", "RIGHT", "FIRE")  # directions before fire
DEFAULT_KEYS = MappingProxyType({"up": "UP", "down": "DOWN", "left": "LEFT", "right": "RIGHT",
                                 "space": "FIRE"})


ATARI_HZ = 60.0  # the console's frame rate (NTSC)
# What ale-py's info holds with every frame (reset's too).
INFO_COLUMNS = MappingProxyType({"lives": "int64", "episode_frame_number": "int64",
                                 "frame_number": "int64"})


# A start snapshot: SNAPSHOT_MAGIC, the xxh3-64 of the rest (8 bytes, big-endian), the length
# of a JSON header (4 bytes) holding the env's numpy RNG state (the stochastic frameskip of
# v4 ids draws from it), then the ALE state with its RNG (`ALEState.serialize`, ~14.4 KB).
SNAPSHOT_MAGIC = b"gymrec-ale-start\x01"
# Held while an env is made seeded (Atari.make_for_seed swaps ale-py's seed_game meanwhile).
_SEED_GAME = threading.Lock()


def encode_snapshot(ale_state: bytes, np_random_state: dict) -> bytes:
    header = json.dumps({"np_random": np_random_state}).encode()
    body = len(header).to_bytes(4, "big") + header + ale_state
    return SNAPSHOT_MAGIC + xxhash.xxh3_64_intdigest(body).to_bytes(8, "big") + body


def decode_snapshot(snapshot: bytes) -> tuple[bytes, dict]:
    """(ALE state, numpy RNG state) of a snapshot; StartStateError when it is not whole (the
    checksum keeps damaged bytes away from ALE's own parser, which does not check them)."""
    size = len(SNAPSHOT_MAGIC)
    if not snapshot.startswith(SNAPSHOT_MAGIC) or len(snapshot) < size + 12:
        raise StartStateError("the start state is not an ALE start state")
    body = snapshot[size + 8:]
    if xxhash.xxh3_64_intdigest(body) != int.from_bytes(snapshot[size:size + 8], "big"):
        raise StartStateError("the start state is damaged (its checksum differs)")
    length = int.from_bytes(body[:4], "big")
    try:
        header = json.loads(body[4:4 + length])
        return body[4 + length:], dict(header["np_random"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StartStateError("the start state's header is malformed") from exc


def mean_frameskip(frameskip: int | Sequence[int]) -> float:
    """ALE's frames per step: an int, or (low, high) drawn uniformly from range(low, high)."""
    if isinstance(frameskip, int):
        return float(frameskip)
    low, high = frameskip
    return (low + high - 1) / 2


def atari_components(meaning: str) -> frozenset[str]:
    """"UPRIGHTFIRE" → {UP, RIGHT, FIRE}; "NOOP" → {}."""
    rest, parts = meaning.upper(), set()
    if rest == "NOOP":
        return frozenset()
    for token in ("UP", "DOWN", "RIGHT", "LEFT", "FIRE"):
        if token in rest:
            parts.add(token)
            rest = rest.replace(token, "", 1)
    if rest:
        raise UsageError(f"unknown Atari action meaning {meaning!r}")
    return frozenset(parts)


def atari_action(controls: Iterable[str], meanings: Sequence[str]) -> int:
    """The index in `meanings` (the env's get_action_meanings()) for the held controls."""
    options = [atari_components(m) for m in meanings]
    return nearest(cancel_opposites(controls), options, PRIORITY)


class Atari(GymPlatform):
    name = "atari"
    title = "Atari"
    module = "ale_py"
    default_fps = 15.0
    fps_rule = "60/frameskip"
    controls = CONTROLS
    default_keys = DEFAULT_KEYS

    def register_ids(self) -> None:
        import ale_py
        import gymnasium as gym

        gym.register_envs(ale_py)

    def native_fps(self, env: Any) -> float:
        return ATARI_HZ / mean_frameskip(env.unwrapped._frameskip)

    def settings(self, env: Any) -> dict:
        ale = env.unwrapped
        found = super().settings(env)
        found.update(frameskip=json_safe(ale._frameskip), obs_type=ale._obs_type,
                     repeat_action_probability=round(float(
                         ale.ale.getFloat("repeat_action_probability")), 6),
                     mode=ale._game_mode, difficulty=ale._game_difficulty,
                     actions=len(ale.get_action_meanings()))
        if env.spec is not None and env.spec.max_episode_steps:
            found["max_episode_steps"] = env.spec.max_episode_steps
        return found

    def action_labels(self, env: Any) -> list[str]:
        return list(env.unwrapped.get_action_meanings())

    def info_columns(self, env: Any) -> dict[str, str]:
        return dict(INFO_COLUMNS)

    def info_reader(self, env: Any, live: bool = True) -> Callable[[Mapping], dict]:
        if not live:
            return super().info_reader(env, live)
        ale = env.unwrapped.ale  # the info ale-py returns, read where an info lacks it

        def read(info: Mapping) -> dict:
            try:  # every step's info holds them, as ints: the fast path (replay, per step)
                values = {k: info[k] for k in INFO_COLUMNS}
                if all(type(v) is int for v in values.values()):
                    return values
            except KeyError:
                pass
            return typed_info({"lives": ale.lives(),
                               "episode_frame_number": ale.getEpisodeFrameNumber(),
                               "frame_number": ale.getFrameNumber()}, INFO_COLUMNS)

        return read

    recordable = ("ram",)

    def extras_reader(self, env: Any, names: tuple[str, ...]) -> Callable[[Any], dict]:
        if not names:
            return super().extras_reader(env, names)
        ale = env.unwrapped.ale  # getRAM(): the console's 128 bytes, a new array each call
        return lambda observation: {"ram": ale.getRAM()}

    def make_for_seed(self, env_id: str, kwargs: Mapping[str, Any], seed: int) -> Any:
        # ale-py's env seeds itself and loads its ROM as it is made, and reset(seed) seeds and
        # loads it again (~0.1-0.2 s each, a session's start waits for both): made seeded with
        # `seed` as reset(seed) seeds it, its first reset needs no seed and no second load.
        # The same emulator, RNGs and frames (tests/system/test_start_states.py).
        from ale_py.env import AtariEnv

        seeded: list = []
        unseeded = AtariEnv.seed_game

        def seed_game(atari: Any, value: int | None = None) -> Any:
            if value is not None:
                return unseeded(atari, value)
            seeded.append((atari, unseeded(atari, seed)))  # the one call as it is made
            return seeded[-1][1]

        with _SEED_GAME:
            AtariEnv.seed_game = seed_game
            try:
                env = self.make(env_id, kwargs)
            finally:
                AtariEnv.seed_game = unseeded
        if len(seeded) == 1 and seeded[0][0] is env.unwrapped:
            env.unwrapped._gymrec_made_for = (seed, seeded[0][1])
        return env  # else ale-py made it otherwise: first_reset seeds as usual

    def first_reset(self, env: Any, seed: int) -> tuple[Any, dict]:
        made_for = getattr(env.unwrapped, "_gymrec_made_for", None)
        if made_for is None or made_for[0] != seed:
            return env.reset(seed=seed)
        del env.unwrapped._gymrec_made_for
        observation, info = env.reset()
        info["seeds"] = made_for[1]  # what a seeded reset's info says
        return observation, info

    def start_snapshot(self, env: Any) -> bytes | None:
        # A seeded reset reloads the ROM (~111 ms for Breakout, vs ~6 ms unseeded): snapshot
        # the emulator with its RNG (sticky actions) and the env's RNG (stochastic frameskip).
        atari = env.unwrapped
        return encode_snapshot(atari.ale.cloneState(include_rng=True).serialize(),
                               atari.np_random.bit_generator.state)

    def restore_start(self, env: Any, snapshot: bytes) -> None:
        import ale_py

        ale_state, np_state = decode_snapshot(snapshot)
        atari = env.unwrapped
        try:
            atari.ale.restoreState(ale_py.ALEState(ale_state))
            atari.np_random.bit_generator.state = np_state
        except (SystemError, ValueError, TypeError, KeyError) as exc:
            raise StartStateError(f"the start state cannot be restored: {exc}") from exc

    def resolver(self, env: Any) -> Callable[[frozenset[str]], Any]:
        meanings = self.action_labels(env)
        table: dict[frozenset[str], int] = {}

        def atari(controls: frozenset[str]) -> int:
            if controls not in table:  # at most 2^5 combinations: cache them
                table[controls] = atari_action(controls, meanings)
            return table[controls]

        return atari

    def summary(self, catalogue: Mapping[str, str]) -> list[str]:
        games = sorted({i.removeprefix("ALE/").removesuffix("-v5") for i in catalogue
                        if i.startswith("ALE/")})
        return [heading(self, f"{len(games)} games, {len(catalogue)} ids", "Atari, ale-py"),
                "  ids: ALE/<Game>-v5 (sticky actions), <Game>NoFrameskip-v4, <Game>-v4, "
                "-v0 forms",
                *wrapped(games)]


PLATFORM = Atari()
