"""The resend buffer's rules, as plain bookkeeping."""

from __future__ import annotations

from recorder.delivery.outbox import Outbox


def _fill(box: Outbox, n: int, nbytes: int = 10) -> None:
    for _ in range(n):
        box.add([b"x"], nbytes, steps=1)


def test_ack_frees_bytes_and_counts_durable_steps():
    box = Outbox(max_bytes=100)
    _fill(box, 5)
    assert box.bytes == 50 and box.unacked == 5
    box.ack(2)
    assert box.bytes == 20 and box.steps_durable == 3 and box.entries[0].seq == 3
    box.ack(1)  # stale ack changes nothing
    assert box.steps_durable == 3
    box.ack(99)  # an ack beyond what was sent is ignored
    assert box.acked_seq == 2


def test_send_cursor_and_rewind_never_go_below_acked():
    box = Outbox(max_bytes=1000)
    _fill(box, 4)
    sent = []
    while (entry := box.next_unsent()) is not None:
        sent.append(entry.seq)
        box.mark_sent()
    assert sent == [0, 1, 2, 3] and box.in_flight
    box.ack(1)
    box.rewind(0)
    assert box.next_unsent().seq == 2
    box.rewind(3)  # a later resend request never skips what is still to be sent
    assert box.next_unsent().seq == 2
    box.mark_sent()
    box.mark_sent()
    box.rewind(3)
    assert box.next_unsent().seq == 3


def test_dropped_steps_form_one_gap_per_episode():
    box = Outbox(max_bytes=20)
    _fill(box, 2)
    assert not box.has_room(10)
    assert box.drop_step(episode=0, step=5) is None
    assert box.drop_step(episode=0, step=6) is None
    finished = box.drop_step(episode=1, step=0)
    assert (finished.episode, finished.first_step, finished.last_step, finished.count) == (
        0, 5, 6, 2)
    gap = box.take_gap()
    assert (gap.episode, gap.first_step, gap.count) == (1, 0, 1)
    assert box.take_gap() is None and box.steps_dropped == 3


def test_batches_cover_seq_ranges_and_free_their_slots_when_acked():
    box = Outbox(max_bytes=1000)
    box.add([b"start"], 5)
    first = box.add([b"batch"], 0, steps=4, count=4, slots=(0, 1, 2, 3))
    second = box.add([b"batch"], 0, steps=2, count=2, slots=(4, 5))
    assert (first, second, box.next_seq) == (1, 5, 7)
    assert box.ack(3) == []  # halfway through the first batch: nothing freed yet
    assert box.unacked == 2  # ... and that batch is resent whole if needed (the writer dedups)
    box.rewind(2)
    assert box.next_unsent().seq == 1
    assert box.ack(6) == [0, 1, 2, 3, 4, 5]
    assert box.steps_durable == 6 and box.unacked == 0
