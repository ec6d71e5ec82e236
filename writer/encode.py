"""Frames as the writer stores them: encoded with a codec (`shared.codec`, because replay
re-encodes replayed frames with exactly the function the writer stored them with) and hashed
(`shared.frame_hash`, from the same raw pixels), in the encoder pool, never in a game loop; or
encoded already by a headless recorder (`FrameEncoder.take_images`: checked, not encoded again).
A session's repeated frames are encoded once (`shared.images.FrameImages`)."""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from shared.errors import ProtocolError
from shared.images import RECENT_IMAGES, FrameImages
from shared.schema import extra_cells
from shared.shm import RingReader

__all__ = ["Encoded", "FrameEncoder", "encode_frame"]

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
        self.extras = extras
        self.images = FrameImages(shape, codec_name, quality, recent)
        self._expected: tuple | None = None  # the header of a frame encoded here

    @property
    def reused(self) -> int:
        """Frames whose image was a recent frame's (not encoded again)."""
        return self.images.reused

    def encode(self, pixels, extra_data: list | None = None) -> Encoded:
        """One frame's raw pixels (bytes or a buffer of the session's shape) as stored."""
        image, hashed = self.images.encode(pixels)
        return Encoded(image, hashed,
                       extra_cells(self.extras, extra_data) if self.extras else None)

    def take_images(self, images: list, hashes: list[str],
                    extra_data: list | None = None) -> list[Encoded]:
        """Frames a recorder encoded (with the session's codec and quality) as stored: each
        image's header must say what the header of a frame encoded here says (size, colour
        layout), else ProtocolError; their extras are made into cells here, as for frames
        encoded here."""
        header = self.images.codec.image_header
        if self._expected is None:
            blank = np.zeros(self.shape, np.uint8)
            self._expected = header(self.images.codec.encode(blank, self.images.quality))
        stored = []
        for i, (image, hashed) in enumerate(zip(images, hashes, strict=True)):
            data = bytes(image)
            if header(data) != self._expected:
                height, width, channels = self.shape
                raise ProtocolError(f"step image {i} is not a {width}x{height} image of "
                                    f"{channels} channels as the session stores them")
            stored.append(Encoded(data, hashed, extra_cells(self.extras, extra_data[i])
                                  if self.extras else None))
        return stored

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
