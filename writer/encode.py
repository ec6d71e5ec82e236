"""Frame codecs for the writer. They live in `shared.codec`, because replay re-encodes replayed
frames with exactly the function the writer stored them with."""

from __future__ import annotations

from shared.codec import encode_frame

__all__ = ["encode_frame", "encode_frames"]


def encode_frames(pixels: list, shape: list, codec: str, quality: int) -> list[bytes]:
    """Encode a batch of frames in one task (one pool hand-off per message, not per frame)."""
    return [encode_frame(px, shape, codec, quality) for px in pixels]
