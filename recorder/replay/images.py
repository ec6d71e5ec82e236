"""Pictures of a divergence: recorded | replayed | difference, side by side. Pure numpy, apart
from `save_png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GAP_PIXELS = 4


def pixel_difference(recorded: np.ndarray, replayed: np.ndarray) -> int:
    """The largest absolute difference of any channel of any pixel (255 if shapes differ)."""
    if recorded.shape != replayed.shape:
        return 255
    return int(np.abs(recorded.astype(np.int16) - replayed.astype(np.int16)).max(initial=0))


def side_by_side(recorded: np.ndarray, replayed: np.ndarray) -> np.ndarray:
    """One RGB image: recorded | replayed | difference. In the difference panel every pixel that
    differs at all is lit, brighter the more it differs (scaled to the largest difference)."""
    left, middle = _rgb(recorded), _rgb(replayed)
    height = max(left.shape[0], middle.shape[0])
    width = max(left.shape[1], middle.shape[1])
    left, middle = _pad(left, height, width), _pad(middle, height, width)
    diff = np.abs(left.astype(np.int16) - middle.astype(np.int16)).max(axis=2)
    largest = int(diff.max(initial=0))
    heat = np.zeros((height, width, 3), np.uint8)
    if largest:
        lit = diff > 0
        heat[lit, 0] = 64 + diff[lit] * 191 // largest  # red: any difference shows
        heat[lit, 1] = diff[lit] * 255 // largest // 2
    gap = np.full((height, GAP_PIXELS, 3), 128, np.uint8)
    return np.concatenate([left, gap, middle, gap, heat], axis=1)


def save_png(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


def _rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame[:, :, :3])


def _pad(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    out = np.zeros((height, width, 3), np.uint8)
    out[:frame.shape[0], :frame.shape[1]] = frame
    return out
