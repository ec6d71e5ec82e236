"""Frame codecs for the writer. They live in `shared.codec`, because replay re-encodes replayed
frames with exactly the function the writer stored them with."""

from __future__ import annotations

from shared.codec import encode_frame

__all__ = ["encode_frame"]
