"""A session's frame encoder: a frame that repeats one of the last few gets that frame's image,
byte for byte what a new encode gives, whichever encoder thread gets it; memory stays bounded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from recorder.envs import frame_of, make_env, resolve_env
from shared.codec import encode_frame as encode_pixels
from shared.frame_hash import frame_hash
from writer.encode import FrameEncoder


@pytest.fixture(scope="module")
def breakout_frames() -> list[np.ndarray]:
    """12 distinct frames of a real Breakout game."""
    env = make_env(resolve_env("BreakoutNoFrameskip-v4"))
    obs, _ = env.reset(seed=4)
    frames, seen = [], set()
    while len(frames) < 12:
        frame = np.ascontiguousarray(frame_of(obs, env))
        if frame_hash(frame) not in seen:
            seen.add(frame_hash(frame))
            frames.append(frame)
        obs, *_ = env.step(1 if len(frames) % 3 == 0 else 3)
    env.close()
    return frames


def _check_stored_as_encoded(encoded, frames, codec: str = "jpeg", quality: int = 95) -> None:
    for stored, frame in zip(encoded, frames, strict=True):
        assert stored.image == encode_pixels(frame.tobytes(), list(frame.shape), codec, quality)
        assert stored.frame_hash == frame_hash(frame)


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_a_repeated_frame_gets_the_image_a_new_encode_would(breakout_frames, codec):
    a, b, c = breakout_frames[:3]
    frames = [a, b, a, a, c, b]
    encoder = FrameEncoder(list(a.shape), codec, 95)
    encoded = encoder.encode_many([f.tobytes() for f in frames])
    _check_stored_as_encoded(encoded, frames, codec)
    assert encoder.reused == 3
    assert encoded[2].image is encoded[0].image  # reused, not encoded again


def test_only_the_last_few_images_are_kept(breakout_frames):
    shape = list(breakout_frames[0].shape)
    encoder = FrameEncoder(shape, "jpeg", 95, recent=4)
    frames = breakout_frames[:6] + [breakout_frames[5], breakout_frames[0]]
    encoded = encoder.encode_many([f.tobytes() for f in frames])
    _check_stored_as_encoded(encoded, frames)
    assert encoder.reused == 1  # frame 5 again is recent; frame 0 had been let go
    assert len(encoder.images._recent) == 4


def test_encoder_threads_sharing_a_session_store_every_frame_as_encoded(breakout_frames):
    rng = np.random.default_rng(0)
    frames = [breakout_frames[i] for i in rng.integers(0, 6, 400)]
    encoder = FrameEncoder(list(frames[0].shape), "jpeg", 95)
    results: dict[int, list] = {}

    def encode(part: int) -> None:
        results[part] = encoder.encode_many([f.tobytes() for f in frames[part::4]])

    threads = [threading.Thread(target=encode, args=(part,)) for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for part in range(4):
        _check_stored_as_encoded(results[part], frames[part::4])
    assert encoder.reused >= 400 - 4 * 6  # each thread encodes each distinct frame at most once
