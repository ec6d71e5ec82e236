"""Frame codecs: raw pixels in, image file bytes out, and back. Pure functions, safe to run in
threads (simplejpeg releases the GIL while it encodes, so a thread pool uses every core).

The writer stores frames with `encode_frame`; replay re-encodes replayed frames with the very same
function and settings, because libjpeg-turbo is deterministic: equal pixels give equal bytes.
"""

from __future__ import annotations

import io

import numpy as np
import simplejpeg

JPEG_COLORSPACE = {1: "GRAY", 3: "RGB", 4: "RGBA"}
JPEG_SUBSAMPLING = "444"  # 4:2:0 smears thin coloured Atari sprites (~17 dB worse)
PNG_LEVEL = 1


def encode_frame(pixels, shape: list, codec: str, quality: int) -> bytes:
    """Encode uint8 pixels of `shape` (H, W, C) as JPEG (4:4:4 chroma) or lossless PNG."""
    array = np.frombuffer(pixels, dtype=np.uint8).reshape(shape)
    if codec == "jpeg":
        return simplejpeg.encode_jpeg(
            array, quality=quality, colorspace=JPEG_COLORSPACE[shape[2]],
            colorsubsampling=JPEG_SUBSAMPLING,
        )
    if codec == "png":
        from PIL import Image

        image = Image.fromarray(array[:, :, 0] if shape[2] == 1 else array)
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=PNG_LEVEL)
        return out.getvalue()
    raise ValueError(f"unknown codec {codec!r}")


def decode_frame(data: bytes, codec: str, channels: int) -> np.ndarray:
    """Decode image bytes written by `encode_frame` into uint8 pixels (H, W, channels)."""
    if codec == "jpeg":
        array = simplejpeg.decode_jpeg(data, colorspace=JPEG_COLORSPACE[channels])
    elif codec == "png":
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image)
    else:
        raise ValueError(f"unknown codec {codec!r}")
    if array.ndim == 2:
        array = array[:, :, None]
    return array
