"""A session's frames as image files: each hashed (`shared.frame_hash`) and encoded with the
session's codec, where that happens: in the writer's encoder threads, or in a headless recorder
that has a core of its own (recorder/delivery/link.py). Both give the same bytes.

A frame whose pixels equal one of the last few frames' (same xxh3-128, the hash replay already
trusts) gets that frame's image bytes instead of a new encode: the codecs are deterministic, so
they are the bytes an encode would give. Random play repeats frames often (Breakout ~7%,
Airstriker ~16%, Space Invaders ~33%). xxh3 is not collision-proof against a forger, but the
images kept are the session's own: a peer that forges a collision only gets its own earlier
frame stored, which it could have sent."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from shared import codec
from shared.frame_hash import frame_hash

RECENT_IMAGES = 32  # images kept for reuse per session (~12 KB each for an Atari JPEG)


class FrameImages:
    """Frames of one shape, codec and quality as (image bytes, frame hash). Safe to call from
    several threads at once."""

    def __init__(self, shape: list, codec_name: str, quality: int,
                 recent: int = RECENT_IMAGES):
        self.shape = tuple(shape)
        self.codec = codec.codec_for(codec_name)
        self.quality = quality
        self._recent: OrderedDict[str, bytes] = OrderedDict()  # frame hash → image, newest last
        self._keep = recent
        self._lock = threading.Lock()
        self.reused = 0  # frames whose image was a recent frame's

    def encode(self, pixels) -> tuple[bytes, str]:
        """One frame's raw pixels (an array or a buffer of the shape) as (image, hash): hashed
        (~3 µs for an Atari frame) and encoded (~0.1-0.2 ms for its JPEG) unless recent."""
        hashed = frame_hash(pixels)
        with self._lock:
            image = self._recent.get(hashed)
            if image is not None:
                self._recent.move_to_end(hashed)
                self.reused += 1
        if image is None:
            array = np.frombuffer(pixels, dtype=np.uint8).reshape(self.shape)
            image = self.codec.encode(array, self.quality)
            with self._lock:
                self._recent[hashed] = image
                if len(self._recent) > self._keep:
                    self._recent.popitem(last=False)
        return image, hashed
