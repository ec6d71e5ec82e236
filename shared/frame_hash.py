"""The raw-frame hash stored on every row: xxh3-128 of the frame's uint8 pixels, row-major
(H, W, C), as 32 lowercase hex characters. The writer computes it from the pixels it encodes,
replay from the frame it replays, so verification does not depend on the codec. Not
cryptographic: it catches accidental differences (a desync, a wrong frame), not a forger.
"""

from __future__ import annotations

import numpy as np
import xxhash

HASH_NAME = "xxh3-128"


def frame_hash(pixels) -> str:
    """The hash of a frame: a (H, W, C) uint8 array or its raw bytes."""
    if isinstance(pixels, np.ndarray) and not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)
    return xxhash.xxh3_128_hexdigest(pixels)
