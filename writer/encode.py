"""Frames as the writer stores them: encoded with a codec (`shared.codec`, because replay
re-encodes replayed frames with exactly the function the writer stored them with) and hashed
(`shared.frame_hash`, from the same raw pixels), in the encoder pool, never in a game loop.

A session's frames go through its `FrameEncoder`. A frame whose pixels equal one of the last
few frames' (same xxh3-128, the hash replay already trusts) gets that frame's image bytes
instead of a new encode: the codecs are deterministic, so they are the bytes an encode would
give. Random play repeats frames often (Breakout ~7%, Airstriker ~16%, Space Invaders ~33%).
xxh3 is not collision-proof against a forger, but the images kept are the session's own: a peer
that forges a collision only gets its own earlier frame stored, which it could have sent."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from shared import codec
from shared.frame_hash import frame_hash
from shared.schema import extra_cells
from shared.shm import RingReader

__all__ = ["Encoded", "FrameEncoder", "encode_frame"]

RECENT_IMAGES = 32  # images kept for reuse per session (~12 KB each for an Atari JPEG)

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
    """One frame as stored, without a session (`FrameEncoder.encode` of a single frame): uint8
    pixels of `shape` (H, W, C) encoded with the codec called `codec_name` and hashed; `extras`
    (SessionStart's) and `extra_data` (the step's buffers): its extra columns too."""
    return FrameEncoder(shape, codec_name, quality, extras, recent=0).encode(pixels, extra_data)


class FrameEncoder:
    """One session's frames, encoded: its shape, codec, quality and extras are fixed. Safe to
    call from several encoder threads at once."""

    def __init__(self, shape: list, codec_name: str, quality: int,
                 extras: dict | None = None, recent: int = RECENT_IMAGES):
        self.shape = tuple(shape)
        self.quality = quality
        self.extras = extras
        self._encode = codec.codec_for(codec_name).encode
        self._recent: OrderedDict[str, bytes] = OrderedDict()  # frame hash → image, newest last
        self._keep = recent
        self._lock = threading.Lock()
        self.reused = 0  # frames whose image was a recent frame's

    def encode(self, pixels, extra_data: list | None = None) -> Encoded:
        """One frame's raw pixels (bytes or a buffer of the session's shape) as stored: hashed
        (~3 µs for an Atari frame) and encoded (~0.2 ms for its JPEG) unless recent."""
        hashed = frame_hash(pixels)
        with self._lock:
            image = self._recent.get(hashed)
            if image is not None:
                self._recent.move_to_end(hashed)
                self.reused += 1
        if image is None:
            array = np.frombuffer(pixels, dtype=np.uint8).reshape(self.shape)
            image = self._encode(array, self.quality)
            with self._lock:
                self._recent[hashed] = image
                if len(self._recent) > self._keep:
                    self._recent.popitem(last=False)
        return Encoded(image, hashed,
                       extra_cells(self.extras, extra_data) if self.extras else None)

    def encode_many(self, pixels: list, extra_data: list | None = None) -> list[Encoded]:
        """A batch of frames in one task (one pool hand-off per message, not per frame);
        `extra_data`: per frame, its extras' buffers."""
        return [self.encode(px, extra_data[i] if self.extras else None)
                for i, px in enumerate(pixels)]

    def encode_ring(self, ring: RingReader, slots: list,
                    extra_data: list | None = None) -> list[Encoded]:
        """`encode_many` of frames that are in a session's shared-memory ring, at `slots`:
        each is read here, in the encoder thread (pread releases the GIL), into this thread's
        buffer. The recorder reuses a slot only once its step is acknowledged, which is after
        its row is written, so after this read. ProtocolError when the ring was cut short (or
        closed)."""
        buffer = _buffer(ring.slot_bytes)
        encoded = []
        with ring.reading():
            for i, slot in enumerate(slots):
                ring.read_into(slot, buffer)
                encoded.append(self.encode(buffer, extra_data[i] if self.extras else None))
        return encoded


def _buffer(size: int) -> bytearray:
    """This thread's buffer of `size` bytes (made again when a session's frames differ)."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) != size:
        buffer = _local.buffer = bytearray(size)
    return buffer
