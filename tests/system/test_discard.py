"""A discarded episode leaves the dataset (its rows are kept under .discarded/)."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from recorder.delivery.link import WriterLink
from shared import protocol as p
from shared.schema import EpisodeEndData, StepData
from tests.support.datasets_check import assert_exact_episodes, load
from tests.support.messages import make_start

SID = "feedfacefeedfacefeedfacefeedface"


def _start(shape) -> p.SessionStart:
    return make_start(session=SID, env_id="Synthetic-v0", codec="png", frame_shape=list(shape),
                      action_space={"type": "Discrete", "n": 3, "start": 0},
                      action_labels=["A", "B", "C"])


def test_discarded_episode_is_left_out(writer_factory, endpoint, data_dir):
    writer_factory().start()
    frame = np.zeros((8, 8, 3), np.uint8)
    link = WriterLink(endpoint, _start(frame.shape), max_bytes=1 << 24)
    for episode, (outcome, steps) in enumerate([("terminated", 5), ("discarded", 7),
                                                 ("truncated", 3)]):
        for step in range(steps):
            frame[:] = step
            link.send_step(StepData(
                episode=episode, step=step, seed=100 + episode, frame=frame,
                timestamp=time.time(), action=step % 3, reward=1.0,
                terminated=outcome == "terminated" and step == steps - 1,
                truncated=outcome == "truncated" and step == steps - 1))
            link.pump()
        link.send_episode_end(EpisodeEndData(
            episode=episode, step=steps, seed=100 + episode, frame=frame,
            timestamp=time.time(), outcome=outcome, terminated=outcome == "terminated",
            truncated=outcome == "truncated"))
    link.send_session_end("completed")
    assert link.drain(timeout=30)
    link.close()
    ds = load(data_dir, "Synthetic-v0")
    episodes = assert_exact_episodes(ds)
    assert sorted(len(rows) for rows in episodes.values()) == [4, 6]
    assert {r[0]["episode_index"] for r in episodes.values()} == {0, 2}
    (discarded,) = (data_dir / "Synthetic-v0" / ".discarded").glob("*.arrow")
    kept_aside = pa.ipc.open_stream(str(discarded)).read_all()
    assert set(kept_aside.column("episode_index").to_pylist()) == {1}
    assert kept_aside.num_rows == 7
