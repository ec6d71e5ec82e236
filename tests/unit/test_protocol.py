"""The wire protocol: round trips, and every kind of bad message raises ProtocolError."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import protocol as p
from shared.errors import ProtocolError

SID = "0123456789abcdef0123456789abcdef"


def _start(**overrides) -> p.SessionStart:
    fields = dict(
        session=SID, seq=0, env_id="BreakoutNoFrameskip-v4", platform="atari",
        env_kwargs={"render_mode": "rgb_array"}, observation_space="Box(0, 255, (210, 160, 3))",
        action_space={"type": "Discrete", "n": 4, "start": 0}, action_labels=["NOOP"] * 4,
        fps=15.0, codec="jpeg", quality=95, versions={"ale-py": "0.12.1"},
        recorder_version="0.1.0", collector="me@host", frame_shape=[4, 5, 3], base_seed=7,
        started_at=1.5, max_steps=0,
    )
    fields.update(overrides)
    return p.SessionStart(**fields)


def _step(**overrides) -> p.Step:
    pixels = np.arange(60, dtype=np.uint8).tobytes()
    fields = dict(session=SID, seq=1, episode=0, step=0, seed=3, timestamp=2.0, action=2,
                  reward=1.0, terminated=False, truncated=False, shape=[4, 5, 3], pixels=pixels)
    fields.update(overrides)
    return p.Step(**fields)


def _wire(frames: list) -> list[bytes]:
    return [bytes(memoryview(f)) for f in frames]


@pytest.mark.parametrize("msg", [
    _start(), _step(), _step(action=[1, 0, 1]),
    p.EpisodeEnd(SID, 5, 0, 4, 3, 2.5, "terminated", True, False, [4, 5, 3], bytes(60)),
    p.Gap(SID, 6, 1, 10, 19, 10), p.SessionEnd(SID, 7, "completed", 100, 10),
    p.Ack(SID, 7), p.Resend(SID, 0), p.Hello(1, "x"), p.HelloReply(1, "x", "/data"),
])
def test_round_trip(msg):
    back = p.from_frames(_wire(p.to_frames(msg)))
    assert back == msg
    if isinstance(msg, (p.Step, p.EpisodeEnd)):
        assert bytes(back.pixels) == bytes(msg.pixels)


def _header(msg) -> dict:
    return msgpack.unpackb(p.to_frames(msg)[1])


def _with_header(msg, **changes) -> list[bytes]:
    frames = _wire(p.to_frames(msg))
    header = _header(msg)
    header.update(changes)
    frames[1] = msgpack.packb(header)
    return frames


@pytest.mark.parametrize("changes", [
    {"seq": -1}, {"seq": 2**64 - 1}, {"seq": "1"}, {"seq": True}, {"session": "../../x"},
    {"episode": 2**40}, {"reward": float("nan")}, {"terminated": 1}, {"shape": [4, 5]},
    {"shape": [4, 5, 2]}, {"shape": [100000, 5, 3]}, {"type": "pickle"}, {"extra": 1},
    {"timestamp": None}, {"action": {"a": [[[[[[[[1]]]]]]]]}},
])
def test_step_field_violations_are_rejected(changes):
    with pytest.raises(ProtocolError):
        p.from_frames(_with_header(_step(), **changes))


@pytest.mark.parametrize("changes", [
    {"seq": 1}, {"codec": "gif"}, {"max_steps": -1}, {"quality": 0}, {"fps": 0},
    {"frame_shape": [0, 1, 3]},
    {"action_space": {"type": "Discrete", "n": 0, "start": 0}},
    {"action_space": {"type": "Tuple"}}, {"versions": {"a": 1}}, {"env_kwargs": []},
])
def test_session_start_violations_are_rejected(changes):
    with pytest.raises(ProtocolError):
        p.from_frames(_with_header(_start(), **changes))


def test_pixel_size_must_match_shape():
    frames = _wire(p.to_frames(_step()))
    frames[2] = frames[2][:-1]
    with pytest.raises(ProtocolError, match="pixel bytes"):
        p.from_frames(frames)


def test_missing_or_extra_frames_and_bad_magic():
    frames = _wire(p.to_frames(_step()))
    for bad in (frames[:2], frames + [b"x"], [b"GYMREC\x02", *frames[1:]], frames[:1]):
        with pytest.raises(ProtocolError):
            p.from_frames(bad)


def test_extension_types_and_timestamps_are_rejected():
    header = _header(_step())
    header["timestamp"] = msgpack.ExtType(5, b"boom")
    with pytest.raises(ProtocolError):
        p.from_frames([p.MAGIC, msgpack.packb(header), bytes(60)])
    header["timestamp"] = msgpack.Timestamp(1, 0)
    with pytest.raises(ProtocolError):
        p.from_frames([p.MAGIC, msgpack.packb(header), bytes(60)])


def test_oversized_header_is_rejected_before_decoding():
    with pytest.raises(ProtocolError, match="over"):
        p.from_frames([p.MAGIC, b"\x00" * (p.MAX_HEADER_BYTES + 1)])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=0, max_size=4))
def test_any_bytes_decode_or_raise_protocol_error(frames):
    try:
        msg = p.from_frames([p.MAGIC, *frames[1:]] if frames and frames[0] == b"" else frames)
    except ProtocolError:
        return
    assert isinstance(msg, (p.Hello, p.HelloReply, p.SessionStart, p.Step, p.EpisodeEnd, p.Gap,
                            p.SessionEnd, p.Ack, p.Resend))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_real_messages_decode_or_raise_protocol_error(data):
    frames = _wire(p.to_frames(_step(action=[1, 0])))
    header = bytearray(frames[1])
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(header) - 1))
        header[i] = data.draw(st.integers(0, 255))
    try:
        p.from_frames([frames[0], bytes(header), frames[2]])
    except ProtocolError:
        pass
