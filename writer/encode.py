"""Frame codecs: raw pixels in, image file bytes out. Pure functions, safe to run in threads
(simplejpeg releases the GIL while it encodes, so a thread pool uses every core)."""

from __future__ import annotations

import io

import numpy as np
import simplejpeg

_JPEG_COLORSPACE = {1: "GRAY", 3: "RGB", 4: "RGBA"}


def encode_frame(pixels, shape: list, codec: str, quality: int) -> bytes:
    """Encode uint8 pixels of `shape` (H, W, C) as JPEG (4:4:4 chroma) or lossless PNG."""
    array = np.frombuffer(pixels, dtype=np.uint8).reshape(shape)
    if codec == "jpeg":
        return simplejpeg.encode_jpeg(
            array, quality=quality, colorspace=_JPEG_COLORSPACE[shape[2]], colorsubsampling="444"
        )
    if codec == "png":
        from PIL import Image

        image = Image.fromarray(array[:, :, 0] if shape[2] == 1 else array)
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
        return out.getvalue()
    raise ValueError(f"unknown codec {codec!r}")
