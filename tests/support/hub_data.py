"""Small datasets made by the writer's own session code (no env, no sockets), for Hub tests that
need many shards fast. Frames are real JPEGs of random pixels."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from shared import protocol as p
from shared.config import dataset_dir
from shared.layout import DatasetLayout
from shared.version import VERSION, package_versions
from tests.support.messages import make_end, make_start, make_step
from writer.encode import encode_frame
from writer.store.session import WriterSession

ENV_ID = "BreakoutNoFrameskip-v4"
SHAPE = [24, 32, 3]


def _done(value: bytes) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def record_session(data_dir: Path, episodes: int = 2, steps: int = 30, shard_rows: int = 20,
                   seed: int = 0, env_id: str = ENV_ID) -> DatasetLayout:
    """One finished session of `episodes` × `steps` steps (+ a final row each); shards are
    sealed at the first episode end after `shard_rows` rows."""
    layout = DatasetLayout(dataset_dir(data_dir, env_id))
    layout.create()
    rng = np.random.default_rng(seed)
    sid = uuid.UUID(int=int(rng.integers(1 << 62)) << 32 | seed).hex
    start = make_start(
        session=sid, env_id=env_id,
        env_kwargs={"repeat_action_probability": 0.0, "frameskip": 1},
        observation_space="Box(0, 255, (24, 32, 3), uint8)", versions=package_versions(),
        recorder_version=VERSION, collector="tester@host", frame_shape=SHAPE, base_seed=seed,
    )
    session = WriterSession(start, layout, batch_rows=16, batch_seconds=0.0,
                            shard_rows=shard_rows, shard_bytes=1 << 30)
    seq = 0

    def frame() -> tuple[bytes, Future]:
        pixels = rng.integers(0, 256, SHAPE, dtype=np.uint8).tobytes()
        return pixels, _done(encode_frame(pixels, SHAPE, "jpeg", 95))

    for episode in range(episodes):
        for step in range(steps):
            seq += 1
            pixels, encoded = frame()
            session.accept(seq, make_step(
                session=sid, seq=seq, episode=episode, step=step, seed=seed + episode,
                timestamp=time.time(), action=int(rng.integers(4)), reward=float(step % 3 == 0),
                terminated=False, truncated=step == steps - 1, shape=SHAPE, pixels=pixels), encoded)
        seq += 1
        pixels, encoded = frame()
        session.accept(seq, make_end(
            session=sid, seq=seq, episode=episode, step=steps, seed=seed + episode,
            timestamp=time.time(), outcome="truncated", terminated=False, truncated=True,
            shape=SHAPE, pixels=pixels), encoded)
        session.pump(time.monotonic() + 1)
    seq += 1
    session.accept(seq, p.SessionEnd(session=sid, seq=seq, reason="done",
                                          steps_sent=episodes * steps, steps_dropped=0), None)
    session.pump(time.monotonic() + 1)
    assert session.ended
    return layout
