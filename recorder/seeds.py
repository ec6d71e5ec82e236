"""Episode seeds: every reset seed is derived from the session's base seed and stored."""

from __future__ import annotations

import numpy as np


def episode_seed(base_seed: int, worker: int, episode: int) -> int:
    """A 31-bit seed for episode `episode` of worker `worker`, reproducible from `base_seed`."""
    state = np.random.SeedSequence([base_seed, worker, episode]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def fresh_base_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**63))
