"""An agent's steps go in batches of up to 256 steps, but never one larger than AGENT_BATCH_BYTES
of frames (a batch of large frames would pass the writer's message limit and be dropped with its
connection), a batch held for sending counts against the resend buffer, and a batch size the
writer would refuse is refused at once."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

from recorder.delivery.link import AGENT_BATCH_BYTES, AGENT_BATCH_STEPS, WriterLink
from shared import protocol as p
from shared.schema import EpisodeEndData, StepData
from tests.support.messages import make_start

LARGE = [480, 640, 3]  # 0.9 MB a frame: 256 of them would be a 236 MB message


def _step(step: int, shape: list) -> StepData:
    frame = np.full(shape, step % 251, np.uint8)
    return StepData(episode=0, step=step, seed=5, frame=frame, timestamp=1000.0 + step,
                    action=step % 4, reward=0.0, terminated=False, truncated=False)


def test_a_batch_of_large_frames_ends_at_its_byte_limit_and_every_step_is_kept(
        writer_factory, endpoint, data_dir):
    writer = writer_factory().start()
    start = make_start(frame_shape=LARGE, codec="jpeg")
    link = WriterLink(endpoint, start, 512 * 2**20, batch_steps=AGENT_BATCH_STEPS)
    steps = 100  # 92 MB of frames: more than the writer's 64 MB message limit
    try:
        for step in range(steps):
            assert link.send_step(_step(step, LARGE))
        link.send_episode_end(EpisodeEndData(episode=0, step=steps, seed=5,
                                             frame=_step(steps, LARGE).frame, timestamp=2000.0,
                                             outcome="terminated", terminated=True,
                                             truncated=False))
        link.send_session_end("done")
        frame_bytes = int(np.prod(LARGE))
        per_batch = -(-AGENT_BATCH_BYTES // frame_bytes)
        assert [e.steps for e in list(link.outbox.entries)[1:4]] == [per_batch, per_batch,
                                                                    steps - 2 * per_batch]
        assert link.drain(60), f"acked up to {link.outbox.acked_seq} of {link.outbox.next_seq - 1}"
    finally:
        link.close()
    assert writer.proc.poll() is None
    files = sorted((data_dir / start.env_id / "data").glob("*.arrow"))
    table = pa.concat_tables(pa.ipc.open_stream(str(f)).read_all() for f in files)
    assert sorted(table.column("step").to_pylist()) == list(range(steps + 1))


def test_the_batch_being_filled_counts_against_the_resend_buffer(endpoint):
    """No writer: nothing is acknowledged, so the 10 MB buffer holds three 3 MB frames."""
    shape = [1024, 1024, 3]
    link = WriterLink(endpoint, make_start(frame_shape=shape), 10 * 2**20,
                      batch_steps=AGENT_BATCH_STEPS)
    try:
        kept = [link.send_step(_step(step, shape)) for step in range(5)]
    finally:
        link.close()
    assert kept == [True, True, True, False, False]  # the rest became a gap
    assert link.outbox.bytes <= 10 * 2**20


@pytest.mark.parametrize("batch_steps", [0, p.MAX_BATCH + 1])
def test_a_batch_size_the_writer_would_refuse_is_an_error_at_once(endpoint, batch_steps):
    started = time.monotonic()
    with pytest.raises(ValueError, match="batch_steps"):
        WriterLink(endpoint, make_start(), 2**20, batch_steps=batch_steps)
    assert time.monotonic() - started < 1
