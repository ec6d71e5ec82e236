"""Episode seeds and episode starts: every reset seed is derived from the session's base seed
and stored, and every episode can be started again on its own.

The first episode of a session is reset with its seed (ALE's env is made seeded for it, so
that this costs one ROM load, not two: `make_env(choice, first_seed)`, `first_reset`). A later
one, on a platform whose seeded resets are costly (ALE reloads its ROM: ~111 ms against ~6 ms
unseeded), is reset without a seed, and the platform's snapshot taken just before that reset
(emulator and RNG state) is stored with its step 0 (`start_state`): replay restores it and
resets without a seed, which plays the same reset and episode again, in any order. Its agent
still gets `reset(seed)`, and that seed is the episode's `seed`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from recorder.envs.base import StartStateError
from recorder.envs.registry import platform_of_env


def episode_seed(base_seed: int, episode: int) -> int:
    """A 31-bit seed for a recording's episode number `episode`, reproducible from `base_seed`
    (whichever headless worker plays it, however many there are)."""
    # The 0 was a worker's number when each worker had its own episodes: kept, so that every
    # seed derived before (all of one worker's) stays what it was.
    state = np.random.SeedSequence([base_seed, 0, episode]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def fresh_base_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**63))


class EpisodeStart(NamedTuple):
    """What an episode starts from: reset's observation and info, and the snapshot to start
    it again from (None: it was reset with its seed)."""

    observation: Any
    info: dict
    start_state: bytes | None = None


def start_episode(env: Any, seed: int) -> EpisodeStart:
    """Reset `env` for a session's later episode, whose seed is `seed`: unseeded after taking
    the platform's snapshot, or with `seed` on platforms without snapshots."""
    snapshot = start_snapshot(env)
    observation, info = env.reset() if snapshot is not None else env.reset(seed=seed)
    return EpisodeStart(observation, info, snapshot)


def start_snapshot(env: Any) -> bytes | None:
    """The platform's snapshot of `env`, to take just before an unseeded reset (None where
    seeded resets are cheap, or for an env no platform claims)."""
    platform = platform_of_env(env)
    return platform.start_snapshot(env) if platform is not None else None


def restart_episode(env: Any, seed: int | None, start_state: bytes | None) -> tuple[Any, dict]:
    """Reset `env` as a recorded episode was: from its `start_state` when it has one (raises
    StartStateError when that is damaged), else with `seed` (None: unseeded). Returns reset's
    observation and info."""
    if start_state is None:
        return env.reset(seed=seed)
    platform = platform_of_env(env)
    if platform is None:
        raise StartStateError("this env's platform has no start states")
    platform.restore_start(env, start_state)
    return env.reset()
