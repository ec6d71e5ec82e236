"""Frame codecs: raw pixels in, image file bytes out, and back. Pure functions, safe to run in
threads (simplejpeg releases the GIL while it encodes, so a thread pool uses every core).

Every codec is one `Codec` in `CODECS`; the CLI's choices, the protocol's check, replay's way of
comparing frames and the cards' wording all come from there, so a new codec is one entry here.
The writer stores frames with `encode_frame`; replay re-encodes replayed frames of a lossy codec
with the very same function and settings (libjpeg-turbo is deterministic: equal pixels give
equal bytes) and decodes those of a lossless one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simplejpeg

from shared.errors import UsageError

JPEG_COLORSPACE = {1: "GRAY", 3: "RGB", 4: "RGBA"}
JPEG_SUBSAMPLING = "444"  # 4:2:0 smears thin coloured Atari sprites (~17 dB worse)
PNG_LEVEL = 1


class UnknownCodec(UsageError):
    """A codec name that is not in CODECS."""


@dataclass(frozen=True, kw_only=True)
class Codec:
    name: str
    # Lossless: replay compares decoded pixels; lossy: replay re-encodes and compares bytes
    # (the encoder must be deterministic).
    lossless: bool
    encode: Callable[[np.ndarray, int], bytes]  # (H, W, C) uint8 pixels, quality → bytes
    decode: Callable[[bytes, int], np.ndarray]  # bytes, channels → pixels (H, W[, C])
    settings: Callable[[int], str]  # quality → how frames are stored, for people
    # What an image's header says (its size and colour layout; None: not an image of this
    # codec): cheap, for checking images a recorder encoded without decoding them.
    image_header: Callable[[bytes], tuple | None]

    def describe(self, quality: int) -> str:
        return f"{self.name} ({self.settings(quality)})"


def _encode_jpeg(array: np.ndarray, quality: int) -> bytes:
    return simplejpeg.encode_jpeg(array, quality=quality,
                                  colorspace=JPEG_COLORSPACE[array.shape[2]],
                                  colorsubsampling=JPEG_SUBSAMPLING)


def _decode_jpeg(data: bytes, channels: int) -> np.ndarray:
    return simplejpeg.decode_jpeg(data, colorspace=JPEG_COLORSPACE[channels])


def _jpeg_header(data: bytes) -> tuple | None:
    """(height, width, colour space, chroma subsampling)."""
    try:
        return tuple(simplejpeg.decode_jpeg_header(data))
    except ValueError:
        return None


def _encode_png(array: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def _decode_png(data: bytes, channels: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


_PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"  # signature, then the IHDR chunk


def _png_header(data: bytes) -> tuple | None:
    """(height, width, bit depth, colour type, interlace)."""
    if len(data) < 29 or not data.startswith(_PNG_START):
        return None
    return (int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big"), data[24],
            data[25], data[28])


CODECS: dict[str, Codec] = {codec.name: codec for codec in (
    Codec(name="jpeg", lossless=False, encode=_encode_jpeg, decode=_decode_jpeg,
          settings=lambda q: f"quality {q}, {':'.join(JPEG_SUBSAMPLING)} chroma",
          image_header=_jpeg_header),
    Codec(name="png", lossless=True, encode=_encode_png, decode=_decode_png,
          settings=lambda q: "lossless", image_header=_png_header),
)}
CODEC_NAMES = tuple(CODECS)


def codec_for(name: str) -> Codec:
    """The codec called `name`, or UnknownCodec naming it and the known ones."""
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        raise UnknownCodec(f"unknown codec {name!r} (one of {', '.join(CODEC_NAMES)})") from None


def describe_codec(name: str, quality: int) -> str:
    """How frames of codec `name` are stored, for cards (an unknown name is shown as it is)."""
    codec = CODECS.get(name)
    return codec.describe(quality) if codec is not None else str(name)


def encode_frame(pixels, shape: list, codec: str, quality: int) -> bytes:
    """Encode uint8 pixels of `shape` (H, W, C) with the codec called `codec`."""
    array = np.frombuffer(pixels, dtype=np.uint8).reshape(shape)
    return codec_for(codec).encode(array, quality)


def decode_frame(data: bytes, codec: str, channels: int) -> np.ndarray:
    """Decode image bytes written by `encode_frame` into uint8 pixels (H, W, channels)."""
    array = codec_for(codec).decode(data, channels)
    if array.ndim == 2:
        array = array[:, :, None]
    return array
