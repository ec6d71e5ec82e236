"""Valid protocol messages for tests, with any field overridden by keyword."""

from __future__ import annotations

import time
import uuid

from shared import protocol as p


def make_start(**overrides) -> p.SessionStart:
    """A valid SessionStart of a 4-action Atari-like game with 4×5 RGB frames: a fresh session
    id and owner token, seq 0, started now. Overrides replace fields by name
    (`frame_shape=[8, 8, 3]`)."""
    fields = dict(
        session=uuid.uuid4().hex, seq=0, env_id="BreakoutNoFrameskip-v4", platform="atari",
        env_kwargs={}, observation_space="Box(0, 255, (4, 5, 3), uint8)",
        action_space={"type": "Discrete", "n": 4, "start": 0},
        action_labels=["NOOP", "FIRE", "RIGHT", "LEFT"], fps=15.0, codec="jpeg", quality=95,
        versions={}, recorder_version="test", collector="test@host", frame_shape=[4, 5, 3],
        base_seed=0, started_at=time.time(), max_steps=0, owner_token=uuid.uuid4().hex,
    )
    fields.update(overrides)
    return p.SessionStart(**fields)


def make_step(**overrides) -> p.Step:
    """A valid Step (seq 1, step 0 of episode 0) with 4×5 RGB pixels; overrides by name."""
    fields = dict(session=uuid.uuid4().hex, seq=1, episode=0, step=0, seed=3, timestamp=2.0,
                  action=2, reward=1.0, terminated=False, truncated=False, shape=[4, 5, 3],
                  pixels=bytes(range(60)))
    fields.update(overrides)
    return p.Step(**fields)


def make_batch(n: int = 3, **overrides) -> p.StepBatch:
    """A valid StepBatch of `n` steps (seq 2 on, steps 1 on) with their pixels inline."""
    fields = dict(session=uuid.uuid4().hex, seq=2, episode=0, first_step=1, seed=3,
                  shape=[4, 5, 3], timestamps=[2.0 + i / 10 for i in range(n)],
                  actions=[i % 4 for i in range(n)], rewards=[float(i % 2) for i in range(n)],
                  terminated=[False] * n, truncated=[False] * n, slots=[],
                  pixels=[bytes(60)] * n)
    fields.update(overrides)
    return p.StepBatch(**fields)


def make_end(**overrides) -> p.EpisodeEnd:
    """A valid EpisodeEnd (seq 5, after 4 steps, terminated) with 4×5 RGB pixels."""
    fields = dict(session=uuid.uuid4().hex, seq=5, episode=0, step=4, seed=3, timestamp=2.5,
                  outcome="terminated", terminated=True, truncated=False, shape=[4, 5, 3],
                  pixels=bytes(60))
    fields.update(overrides)
    return p.EpisodeEnd(**fields)
