"""A restarted writer meets resent StepBatches that overlap what it already holds: every step is
stored exactly once, with its own frame, and the writer stays up."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pytest
import zmq

from recorder.delivery.link import WriterLink
from shared import protocol as p
from shared.codec import decode_frame
from shared.schema import EpisodeEndData, StepData
from tests.support.messages import make_start

SHAPE = [6, 8, 3]


def _frame(seq: int) -> np.ndarray:
    """Pixels that name their step: every byte is (seq * 7) % 256, one corner holds seq."""
    frame = np.full(SHAPE, (seq * 7) % 256, np.uint8)
    frame[0, 0] = [seq % 256, seq // 256, 42]
    return frame


def _batch(session: str, first_seq: int, count: int) -> p.StepBatch:
    seqs = range(first_seq, first_seq + count)
    return p.StepBatch(
        session=session, seq=first_seq, episode=0, first_step=first_seq - 1, seed=5,
        shape=SHAPE, timestamps=[1000.0 + s for s in seqs], actions=[s % 4 for s in seqs],
        rewards=[float(s) for s in seqs], terminated=[False] * count, truncated=[False] * count,
        slots=[], pixels=[_frame(s).tobytes() for s in seqs],
    )


@pytest.fixture
def dealer(endpoint):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    yield sock
    sock.close(linger=0)


def _wait_ack(sock: zmq.Socket, session: str, seq: int, timeout: float = 20) -> None:
    best = -1
    deadline = time.monotonic() + timeout
    while best < seq:
        left = deadline - time.monotonic()
        assert left > 0 and sock.poll(int(left * 1000) + 1), f"acked {best}, waited for {seq}"
        msg = p.from_frames(sock.recv_multipart())
        if isinstance(msg, p.Ack) and msg.session == session:
            best = max(best, msg.seq)


def _rows(root) -> pa.Table:
    files = sorted((root / "data").glob("*.arrow"))
    assert files, "no sealed shard"
    return pa.concat_tables(pa.ipc.open_stream(str(f)).read_all() for f in files).sort_by("seq")


def _assert_own_frames(table: pa.Table) -> None:
    """Each row's picture is the frame that was sent with its step (PNG: exact)."""
    for row in table.to_pylist():
        pixels = decode_frame(row["image"]["bytes"], "png", 3)
        assert np.array_equal(pixels, _frame(row["seq"])), f"seq {row['seq']}: wrong frame"
        assert row["step"] == row["seq"] - 1 and row["timestamp"] == 1000.0 + row["seq"]


def test_resent_batch_overlapping_the_last_one_is_stored_once(writer_factory, dealer,
                                                              data_dir):
    """Seqs 1-4, then a resend of 3-6: the writer keeps 1-6 once each, each with its frame."""
    writer = writer_factory().start()
    start = make_start(frame_shape=SHAPE, codec="png")
    dealer.send_multipart(p.to_frames(start))
    _wait_ack(dealer, start.session, 0)
    dealer.send_multipart(p.to_frames(_batch(start.session, 1, 4)))
    dealer.send_multipart(p.to_frames(_batch(start.session, 3, 4)))
    _wait_ack(dealer, start.session, 6)
    end = p.SessionEnd(session=start.session, seq=7, reason="done", steps_sent=6,
                       steps_dropped=0)
    dealer.send_multipart(p.to_frames(end))
    _wait_ack(dealer, start.session, 7)
    assert writer.proc.poll() is None, writer.log.read_text()
    table = _rows(data_dir / start.env_id)
    assert table.column("seq").to_pylist() == [1, 2, 3, 4, 5, 6]
    _assert_own_frames(table)


def _step(seq: int) -> StepData:
    return StepData(episode=0, step=seq - 1, seed=5, frame=_frame(seq), timestamp=1000.0 + seq,
                    action=seq % 4, reward=float(seq), terminated=False, truncated=False)


def _pump_until(link: WriterLink, done, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"acked {link.outbox.acked_seq}"
        link.pump(max_messages=256)
        time.sleep(0.002)


def test_writer_killed_inside_a_batch_then_the_resend_overlaps(writer_factory, endpoint,
                                                               data_dir):
    """16-step batches into a writer that writes every 40 rows (and never by the clock):
    SIGKILL once seq 40 is durable, i.e. inside the batch of seqs 33-48. The recorder's resend
    of that batch overlaps the durable rows; every step ends up on disk once, with its frame."""
    writer = writer_factory("--batch-rows", "40", "--batch-seconds", "3600").start()
    start = make_start(frame_shape=SHAPE, codec="png")
    link = WriterLink(endpoint, start, 64 * 2**20, batch_steps=16)
    try:
        for seq in range(1, 49):
            link.send_step(_step(seq))
        _pump_until(link, lambda: link.outbox.acked_seq >= 40)
        assert link.outbox.acked_seq == 40  # 41-48 wait in the writer's memory
        writer.kill()
        writer = writer_factory().start()
        for seq in range(49, 81):  # the game goes on; the resend starts at the batch 33-48
            link.send_step(_step(seq))
        link.send_episode_end(EpisodeEndData(episode=0, step=80, seed=5, frame=_frame(81),
                                             timestamp=1081.0, outcome="terminated",
                                             terminated=True, truncated=False))
        link.send_session_end("done")
        _pump_until(link, lambda: not link.outbox.unacked)
    finally:
        link.close()
    assert writer.proc.poll() is None
    resumed = [ln for ln in writer.log.read_text().splitlines() if "resuming after seq" in ln]
    assert resumed and "resuming after seq 40)" in resumed[0]
    table = _rows(data_dir / start.env_id)
    assert table.column("seq").to_pylist() == list(range(1, 82))  # 80 steps + the final row
    _assert_own_frames(table)


def _episode(link: WriterLink, episode: int, first_seq: int, steps: int, outcome: str) -> int:
    """Send `steps` steps and the final row of `episode`; returns the next seq."""
    for i in range(steps):
        seq = first_seq + i
        link.send_step(StepData(episode=episode, step=i, seed=episode, frame=_frame(seq),
                                timestamp=1000.0 + seq, action=0, reward=0.0,
                                terminated=False, truncated=False))
    seq = first_seq + steps
    link.send_episode_end(EpisodeEndData(
        episode=episode, step=steps, seed=episode, frame=_frame(seq), timestamp=1000.0 + seq,
        outcome=outcome, terminated=outcome == "terminated", truncated=outcome == "truncated"))
    return seq + 1


def test_episodes_survive_kills_that_land_at_episode_ends(writer_factory, endpoint, data_dir):
    """The writer is SIGKILLed right after an episode's final row became durable (before any
    control message saved the session file): every episode still reaches the session file
    with its outcome, and the card counts them."""
    writer = writer_factory().start()
    start = make_start(frame_shape=SHAPE, codec="png")
    link = WriterLink(endpoint, start, 64 * 2**20, batch_steps=4)
    plan = [(0, 6, "terminated"), (1, 9, "truncated"), (2, 3, "terminated"), (3, 5, "aborted")]
    seq = 1
    try:
        for episode, steps, outcome in plan:
            seq = _episode(link, episode, seq, steps, outcome)
            _pump_until(link, lambda end=seq - 1: link.outbox.acked_seq >= end)
            if episode < 3:
                writer.kill()  # the final row is durable; nothing else happened since
                writer = writer_factory().start()
        link.send_session_end("done")
        _pump_until(link, lambda: not link.outbox.unacked)
    finally:
        link.close()
    root = data_dir / start.env_id
    state = json.loads((root / ".meta" / "sessions" / f"{start.session}.json").read_text())
    got = [(e["episode_index"], e["steps"], e["outcome"]) for e in state["episodes"]]
    assert got == plan
    summary = json.loads((root / ".meta" / "info.json").read_text())["summary"]
    assert (summary["episodes"], summary["frames"], summary["rows"]) == (4, 23, 27)
    assert "episodes: 4," in (root / "README.md").read_text()


def test_a_restarted_writer_asks_for_what_it_lost_when_the_recorder_re_announces(
        writer_factory, dealer):
    """A writer killed before anything was durable took the recorder's messages with it. The
    recorder has sent everything and only re-announces its session (keepalive): the new writer
    must ask for the rest (Resend), not just acknowledge seq 0, or both wait forever (seen: a
    recording hung for 240 s after quick kills)."""
    writer = writer_factory("--batch-rows", "40", "--batch-seconds", "3600").start()
    start = make_start(frame_shape=SHAPE, codec="png")
    dealer.send_multipart(p.to_frames(start))
    _wait_ack(dealer, start.session, 0)
    dealer.send_multipart(p.to_frames(_batch(start.session, 1, 4)))
    time.sleep(0.3)  # received, not durable (batch_rows 40)
    writer.kill()
    writer_factory().start()
    dealer.send_multipart(p.to_frames(start))  # the keepalive: nothing else is unsent
    replies = []
    deadline = time.monotonic() + 20
    while not any(isinstance(m, p.Resend) for m in replies):
        left = deadline - time.monotonic()
        assert left > 0 and dealer.poll(int(left * 1000) + 1), replies
        replies.append(p.from_frames(dealer.recv_multipart()))
    (resend,) = [m for m in replies if isinstance(m, p.Resend)]
    assert resend.session == start.session and resend.seq == 1
    dealer.send_multipart(p.to_frames(_batch(start.session, 1, 4)))
    _wait_ack(dealer, start.session, 4)
