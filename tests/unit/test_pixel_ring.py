"""The recorder's pixel ring: usable at once, the rest of its memory reserved by a thread, every
slot readable by the writer's side exactly as it was put (real files in /dev/shm)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from recorder.delivery.ring import FIRST_SLOTS, PixelRing
from shared.shm import RingReader, ring_bytes, shm_available, shm_path

pytestmark = pytest.mark.skipif(not shm_available(), reason="needs a writable /dev/shm")

SLOT_BYTES = 100_800  # an Atari frame: 210 x 160 x 3


def _fully_reserved(ring: PixelRing, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while ring.reserved < ring.slots:
        assert time.monotonic() < deadline, f"only {ring.reserved} of {ring.slots} reserved"
        time.sleep(0.005)


def _read(reader: RingReader, slot: int) -> bytes:
    """One slot as the writer reads it."""
    out = bytearray(SLOT_BYTES)
    with reader.reading():
        reader.read_into(slot, out)
    return bytes(out)


def _frame(value: int) -> memoryview:
    return memoryview(np.full(SLOT_BYTES, value % 251, dtype=np.uint8))


def test_the_ring_is_usable_at_once_and_grows_to_its_full_size():
    session, token = os.urandom(16).hex(), "owner"
    ring = PixelRing(session, 400, SLOT_BYTES, token)  # ~40 MB: several chunks
    try:
        assert shm_path(session).stat().st_size == ring_bytes(400, SLOT_BYTES)
        assert ring.reserved >= FIRST_SLOTS and ring.free == ring.reserved
        _fully_reserved(ring)
        assert ring.free == 400
        reader = RingReader(session, 400, SLOT_BYTES, token)
        try:
            slots = [ring.put(_frame(i)) for i in range(400)]
            assert slots == list(range(400))  # in order: the first reserved are used first
            assert ring.free == 0
            for i in (0, FIRST_SLOTS - 1, FIRST_SLOTS, 250, 399):
                assert _read(reader, slots[i]) == _frame(i).tobytes()
        finally:
            reader.close()
        ring.release([3, 7])
        assert ring.free == 2
    finally:
        ring.close()
    assert not shm_path(session).exists()


def test_slots_put_while_the_rest_is_reserved_stay_whole():
    session, token = os.urandom(16).hex(), "owner"
    ring = PixelRing(session, 600, SLOT_BYTES, token)
    try:
        reader = RingReader(session, 600, SLOT_BYTES, token)
        put = {}
        while len(put) < 600:  # take every slot as soon as it is free, as a fast agent does
            if ring.free:
                slot = ring.put(_frame(len(put)))
                put[slot] = len(put)
            else:
                time.sleep(0.001)
        assert sorted(put) == list(range(600))
        for slot, value in put.items():
            assert _read(reader, slot) == _frame(value).tobytes()
        reader.close()
    finally:
        ring.close()


def test_restore_makes_the_whole_ring_again_with_its_frames():
    session, token = os.urandom(16).hex(), "owner"
    ring = PixelRing(session, 300, SLOT_BYTES, token)
    try:
        kept = [ring.put(_frame(i)) for i in range(5)]
        shm_path(session).unlink()  # a writer that gave up on the session removed it
        assert ring.restore()
        assert ring.reserved == 300 and ring.free == 295
        assert not ring.restore()  # there again: nothing to do
        reader = RingReader(session, 300, SLOT_BYTES, token)
        assert [_read(reader, s) for s in kept] == [_frame(i).tobytes() for i in range(5)]
        reader.close()
    finally:
        ring.close()
