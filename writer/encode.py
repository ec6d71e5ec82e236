"""Frames as the writer stores them: encoded with a codec (`shared.codec`, because replay
re-encodes replayed frames with exactly the function the writer stored them with) and hashed
(`shared.frame_hash`, from the same raw pixels), in the encoder pool, never in a game loop."""

from __future__ import annotations

import threading
from typing import NamedTuple

from shared import codec
from shared.frame_hash import frame_hash
from shared.schema import extra_cells
from shared.shm import RingReader

__all__ = ["Encoded", "encode_frame", "encode_frames", "encode_ring_frames"]

# Each encoder thread's frame buffer for ring reads: one frame's bytes, reused frame after
# frame (a fresh 100 KB bytes object per frame cost the writer's loop page faults and copies).
_local = threading.local()


class Encoded(NamedTuple):
    """One frame as stored: its image file bytes and the hash of its raw pixels."""

    image: bytes
    frame_hash: str
    # The step's extra columns (`--record`; shared.schema.extra_cells: VizDoom's buffers as
    # PNG, ~3 ms each, so here and not in the writer's loop); None when none are recorded.
    extras: dict | None = None


def encode_frame(pixels, shape: list, codec_name: str, quality: int, extras: dict | None = None,
                 extra_data: list | None = None) -> Encoded:
    """Encode uint8 pixels of `shape` (H, W, C) with the codec called `codec_name`, and hash
    them (~3 µs for an Atari frame, next to ~0.3 ms for its JPEG); `extras` (SessionStart's)
    and `extra_data` (the step's buffers): its extra columns too."""
    return Encoded(codec.encode_frame(pixels, shape, codec_name, quality), frame_hash(pixels),
                   extra_cells(extras, extra_data) if extras else None)


def encode_frames(pixels: list, shape: list, codec_name: str, quality: int,
                  extras: dict | None = None, extra_data: list | None = None) -> list[Encoded]:
    """Encode a batch of frames in one task (one pool hand-off per message, not per frame);
    `extra_data`: per frame, its extras' buffers."""
    return [encode_frame(px, shape, codec_name, quality, extras,
                         extra_data[i] if extras else None) for i, px in enumerate(pixels)]


def encode_ring_frames(ring: RingReader, slots: list, shape: list, codec_name: str,
                       quality: int, extras: dict | None = None,
                       extra_data: list | None = None) -> list[Encoded]:
    """`encode_frames` of frames that are in a session's shared-memory ring, at `slots`: each
    is read here, in the encoder thread (pread releases the GIL), into this thread's buffer.
    The recorder reuses a slot only once its step is acknowledged, which is after its row is
    written, so after this read. ProtocolError when the ring was cut short (or closed)."""
    buffer = _buffer(ring.slot_bytes)
    encoded = []
    with ring.reading():
        for i, slot in enumerate(slots):
            ring.read_into(slot, buffer)
            encoded.append(encode_frame(buffer, shape, codec_name, quality, extras,
                                        extra_data[i] if extras else None))
    return encoded


def _buffer(size: int) -> bytearray:
    """This thread's buffer of `size` bytes (made again when a session's frames differ)."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) != size:
        buffer = _local.buffer = bytearray(size)
    return buffer
