"""Valid protocol messages for tests, with any field overridden by keyword."""

from __future__ import annotations

import time
import uuid

from shared import protocol as p


def make_start(**overrides) -> p.SessionStart:
    """A valid SessionStart of a 4-action Atari-like game with 4×5 RGB frames: a fresh session
    id, seq 0, started now. Overrides replace fields by name (`frame_shape=[8, 8, 3]`)."""
    fields = dict(
        session=uuid.uuid4().hex, seq=0, env_id="BreakoutNoFrameskip-v4", platform="atari",
        env_kwargs={}, observation_space="Box(0, 255, (4, 5, 3), uint8)",
        action_space={"type": "Discrete", "n": 4, "start": 0},
        action_labels=["NOOP", "FIRE", "RIGHT", "LEFT"], fps=15.0, codec="jpeg", quality=95,
        versions={}, recorder_version="test", collector="test@host", frame_shape=[4, 5, 3],
        base_seed=0, started_at=time.time(), max_steps=0,
    )
    fields.update(overrides)
    return p.SessionStart(**fields)
