"""Frames as the writer stores them: encoded with a codec (`shared.codec`, because replay
re-encodes replayed frames with exactly the function the writer stored them with) and hashed
(`shared.frame_hash`, from the same raw pixels), in the encoder pool, never in a game loop."""

from __future__ import annotations

from typing import NamedTuple

from shared import codec
from shared.frame_hash import frame_hash

__all__ = ["Encoded", "encode_frame", "encode_frames"]


class Encoded(NamedTuple):
    """One frame as stored: its image file bytes and the hash of its raw pixels."""

    image: bytes
    frame_hash: str


def encode_frame(pixels, shape: list, codec_name: str, quality: int) -> Encoded:
    """Encode uint8 pixels of `shape` (H, W, C) with the codec called `codec_name`, and hash
    them (~3 µs for an Atari frame, next to ~0.3 ms for its JPEG)."""
    return Encoded(codec.encode_frame(pixels, shape, codec_name, quality), frame_hash(pixels))


def encode_frames(pixels: list, shape: list, codec_name: str, quality: int) -> list[Encoded]:
    """Encode a batch of frames in one task (one pool hand-off per message, not per frame)."""
    return [encode_frame(px, shape, codec_name, quality) for px in pixels]
