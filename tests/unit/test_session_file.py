"""The session file's episode list: rewritten at most every EPISODES_SAVE_SECONDS, not once per
episode (its cost grew with the square of a session's episodes), and never less than complete:
what it does not list yet, the shards vouch for at the next start."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future

from shared.layout import DatasetLayout
from tests.support.messages import make_end, make_start, make_step
from writer.encode import encode_frame
from writer.store.session import EPISODES_SAVE_SECONDS, WriterSession
from writer.store.shards import recover

SHAPE = [4, 5, 3]
PIXELS = bytes(range(60))


def _encoded() -> Future:
    future: Future = Future()
    future.set_result(encode_frame(PIXELS, SHAPE, "jpeg", 95))
    return future


def _play(session: WriterSession, episodes: int, steps: int = 3, seq: int = 0,
          after_each=lambda: None) -> int:
    """Feed `episodes` episodes of `steps` steps (the odd ones end "aborted"), pumping after
    each; returns the last seq."""
    for episode in range(episodes):
        for step in range(steps):
            seq += 1
            session.accept(seq, make_step(session=session.id, seq=seq, episode=episode,
                                          step=step, seed=episode), _encoded())
        seq += 1
        aborted = episode % 2 == 1
        session.accept(seq, make_end(session=session.id, seq=seq, episode=episode, step=steps,
                                     seed=episode, outcome="aborted" if aborted else "terminated",
                                     terminated=not aborted), _encoded())
        session.pump(time.monotonic())
        after_each()
    return seq


def _session(layout: DatasetLayout, start) -> WriterSession:
    return WriterSession(start, layout, batch_rows=16, batch_seconds=0.0, shard_rows=10_000,
                         shard_bytes=1 << 30)


def test_many_quick_episodes_rewrite_the_session_file_a_few_times_not_once_each(tmp_path):
    layout = DatasetLayout(tmp_path / "env")
    layout.create()
    session = _session(layout, make_start())
    path = layout.session_file(session.id)
    versions = set()  # an atomic rewrite is a new inode
    began = time.monotonic()
    _play(session, 80, after_each=lambda: versions.add(path.stat().st_ino))
    elapsed = time.monotonic() - began
    assert len(versions) <= 2 + elapsed / EPISODES_SAVE_SECONDS, (len(versions), elapsed)
    session.close("interrupted")
    state = json.loads(path.read_text())
    assert [e["episode_index"] for e in state["episodes"]] == list(range(80))


def test_episodes_the_file_did_not_list_yet_come_back_from_the_shards(tmp_path):
    """A writer killed between saves: its open shard is recovered at the next start, and the
    episodes missing from the file are added with the outcome the recorder sent."""
    layout = DatasetLayout(tmp_path / "env")
    layout.create()
    start = make_start()
    _play(_session(layout, start), 30)  # never closed: as if killed
    listed = json.loads(layout.session_file(start.session).read_text())["episodes"]
    assert len(listed) < 30  # the case this test is about
    recover(layout)
    state = _session(layout, start).state
    assert [(e["episode_index"], e["outcome"]) for e in state["episodes"]] == [
        (i, "aborted" if i % 2 else "terminated") for i in range(30)]
    assert json.loads(layout.session_file(start.session).read_text()) == state
