"""The writer's side of the shared-memory ring: frames read in encoder threads, into their own
buffer; a ring cut short or closed is a ProtocolError, never a crash; a close while an encoder
reads waits for it (the descriptor's number must not be reused under the read)."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from recorder.delivery.ring import PixelRing
from shared.codec import encode_frame as encode_pixels
from shared.errors import ProtocolError
from shared.frame_hash import frame_hash
from shared.shm import RingReader, shm_available
from writer.encode import FrameEncoder

pytestmark = pytest.mark.skipif(not shm_available(), reason="no writable /dev/shm")
SHAPE = [6, 5, 3]


@pytest.fixture
def ring():
    """A recorder's ring of 4 slots, slot k filled with value k + 1, and its reader."""
    session, token = uuid.uuid4().hex, uuid.uuid4().hex
    writer_side = PixelRing(session, 4, 90, token)
    for k in range(4):
        writer_side.put(memoryview(bytes([k + 1]) * 90))
    reader = RingReader(session, 4, 90, token)
    yield writer_side, reader
    reader.close()
    writer_side.close()


def test_read_into_copies_the_slots_frame(ring):
    _, reader = ring
    out = bytearray(90)
    with reader.reading():
        reader.read_into(2, out)
    assert out == bytes([3]) * 90


def test_ring_frames_encode_as_inline_frames_do(ring):
    _, reader = ring
    encoded = FrameEncoder(SHAPE, "jpeg", 95).encode_ring(reader, [3, 0])
    for (image, hashed, extras), value in zip(encoded, (4, 1), strict=True):
        pixels = bytes([value]) * 90
        assert image == encode_pixels(pixels, SHAPE, "jpeg", 95)
        assert hashed == frame_hash(np.frombuffer(pixels, np.uint8).reshape(SHAPE))
        assert extras is None


def test_a_ring_cut_short_is_a_protocol_error(ring):
    _, reader = ring
    os.truncate(reader.path, 0)
    with pytest.raises(ProtocolError, match="truncated"):
        FrameEncoder(SHAPE, "jpeg", 95).encode_ring(reader, [1])


def test_a_closed_ring_is_a_protocol_error(ring):
    _, reader = ring
    reader.close()
    with pytest.raises(ProtocolError, match="closed"):
        FrameEncoder(SHAPE, "jpeg", 95).encode_ring(reader, [1])


def test_close_while_reading_keeps_the_descriptor_until_the_read_is_done(ring):
    _, reader = ring
    out = bytearray(90)
    with reader.reading():
        fd = reader._fd
        reader.close()
        os.fstat(fd)  # still ours
        reader.read_into(1, out)
    assert out == bytes([2]) * 90
    assert reader._fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)
