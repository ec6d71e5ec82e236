"""The wire protocol: round trips, and every kind of bad message raises ProtocolError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import protocol as p
from shared.errors import ProtocolError
from tests.support.messages import make_batch, make_end, make_start, make_step

SID = "0123456789abcdef0123456789abcdef"


def _start(**overrides) -> p.SessionStart:
    return make_start(session=SID, env_kwargs={"render_mode": "rgb_array"},
                      versions={"ale-py": "0.12.1"}, base_seed=7, **overrides)


def _step(**overrides) -> p.Step:
    return make_step(session=SID, **overrides)


def _batch(**overrides) -> p.StepBatch:
    return make_batch(session=SID, **overrides)


def _end(**overrides) -> p.EpisodeEnd:
    return make_end(session=SID, **overrides)


def _wire(frames: list) -> list[bytes]:
    return [bytes(memoryview(f)) for f in frames]


@pytest.mark.parametrize("msg", [
    _start(), _step(), _step(action=[1, 0, 1]),
    _end(),
    p.Gap(session=SID, seq=6, episode=1, first_step=10, last_step=19, count=10),
    p.SessionEnd(session=SID, seq=7, reason="completed", steps_sent=100, steps_dropped=10),
    p.Ack(session=SID, seq=7), p.Resend(session=SID, seq=0), p.Hello(nonce=1, version="x"),
    p.HelloReply(nonce=1, version="x", data_dir="/data"),
    p.Refused(session=SID, reason="disk full"), _batch(), _batch(slots=[0, 1, 2], pixels=None),
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
    old, newer = [b"GYMREC\x02", *frames[1:]], [b"GYMREC\x04", *frames[1:]]
    for bad in (frames[:2], frames + [b"x"], old, newer, frames[:1]):
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


@pytest.mark.parametrize("changes", [
    {"timestamps": []}, {"actions": [1]}, {"rewards": [0.0, float("inf"), 0.0]},
    {"terminated": [0, 0, 1]}, {"slots": [0]}, {"slots": [0, 1, 1 << 21]},
    {"first_step": -1}, {"seq": 0},
])
def test_step_batch_violations_are_rejected(changes):
    with pytest.raises(ProtocolError):
        p.from_frames(_with_header(_batch(), **changes))


HASHES = ["0123456789abcdef" * 2, "f" * 32, "0" * 32]
IMAGES = [b"\xff\xd8 an image", b"another", b"x" * 180]  # 3 images of 4x5x3 frames


def _images_batch(**overrides) -> p.StepBatch:
    return _batch(**{"frame_hashes": HASHES, "image_sizes": [len(i) for i in IMAGES],
                     "pixels": IMAGES, **overrides})


def test_a_batch_of_images_encoded_by_the_recorder_round_trips_in_one_frame():
    msg = _images_batch()
    frames = p.to_frames(msg)
    assert len(frames) == 3 and frames[2] == b"".join(IMAGES)
    decoded = p.from_frames(_wire(frames))
    assert decoded == msg
    assert [bytes(image) for image in decoded.pixels] == IMAGES


@pytest.mark.parametrize("changes, images", [
    ({"frame_hashes": HASHES[:2]}, None),  # not one per step
    ({"frame_hashes": ["0123"] * 3}, None),  # not an xxh3-128
    ({"frame_hashes": [""] * 3}, None),
    ({"image_sizes": []}, None),  # images without their sizes
    ({"image_sizes": [14, 7, 0]}, None),  # an empty image
    ({"image_sizes": [14, 7, 181]}, None),  # sizes that are not the frame's
    ({"frame_hashes": HASHES, "image_sizes": [14, 7, 180], "slots": [0, 1, 2]}, []),  # shm
    ({"image_sizes": [1, 1, 2 * 60 + 65537]}, [b"ab" + bytes(2 * 60 + 65537)]),  # too large
])
def test_bad_batches_of_images_are_rejected(changes, images):
    wire = _with_header(_images_batch(), **changes)
    if images is not None:
        wire[2:3] = images
    with pytest.raises(ProtocolError):
        p.from_frames(wire)


@pytest.mark.parametrize("kind", [[1], {"a": 1}, 7, None])
def test_a_type_that_is_no_string_is_rejected(kind):
    with pytest.raises(ProtocolError, match="unknown message type"):
        p.from_frames([p.MAGIC, msgpack.packb({"type": kind, "session": SID, "seq": 1})])


def test_gap_range_must_not_run_backwards():
    gap = p.Gap(session=SID, seq=6, episode=1, first_step=10, last_step=19, count=10)
    with pytest.raises(ProtocolError, match="first_step after last_step"):
        p.from_frames(_with_header(gap, first_step=20))


def test_errors_name_the_field_and_its_value():
    with pytest.raises(ProtocolError, match=r"session_start: bad codec 'gif'"):
        p.from_frames(_with_header(_start(), codec="gif"))


def test_messages_are_keyword_only():
    with pytest.raises(TypeError):
        p.Ack(SID, 7)


# The wire shape, spelled out: a change here is a protocol change (bump MAGIC's version).
WIRE_KEYS = {
    "hello": ["nonce", "version"],
    "hello_reply": ["nonce", "version", "data_dir", "proof"],
    "session_start": [
        "session", "seq", "env_id", "platform", "env_kwargs", "observation_space",
        "action_space", "action_labels", "fps", "codec", "quality", "versions",
        "recorder_version", "collector", "frame_shape", "base_seed", "started_at", "max_steps",
        "shm_slots", "player", "key_bindings", "owner_token", "env_settings", "agent_sha256",
        "info_columns", "extras"],
    "step": ["session", "seq", "episode", "step", "seed", "timestamp", "action", "reward",
             "terminated", "truncated", "shape", "start_state", "info", "info_json",
             "extras"],
    "steps": ["session", "seq", "episode", "first_step", "seed", "shape", "timestamps",
              "actions", "rewards", "terminated", "truncated", "infos", "info_jsons",
              "start_state", "slots", "frame_hashes", "image_sizes", "extras"],
    "episode_end": ["session", "seq", "episode", "step", "seed", "timestamp", "outcome",
                    "terminated", "truncated", "shape", "info", "info_json", "extras"],
    "gap": ["session", "seq", "episode", "first_step", "last_step", "count"],
    "session_end": ["session", "seq", "reason", "steps_sent", "steps_dropped", "fps_changes"],
    "ack": ["session", "seq", "proof"], "resend": ["session", "seq"],
    "refused": ["session", "reason"],
}


@pytest.mark.parametrize("msg", [
    _start(), _step(), _batch(), _end(outcome="aborted", terminated=False),
    p.Gap(session=SID, seq=6, episode=1, first_step=10, last_step=19, count=10),
    p.SessionEnd(session=SID, seq=7, reason="completed", steps_sent=100, steps_dropped=10),
    p.Ack(session=SID, seq=7), p.Resend(session=SID, seq=0), p.Hello(nonce=1, version="x"),
    p.HelloReply(nonce=1, version="x", data_dir="/d"), p.Refused(session=SID, reason="no"),
])
def test_wire_header_keys_and_order_are_unchanged(msg):
    frames = p.to_frames(msg)
    assert frames[0] == b"GYMREC\x03"
    assert list(_header(msg)) == ["type", *WIRE_KEYS[msg.TYPE]]


def _nested(depth: int) -> object:
    """A leaf `depth` levels down when it is a header's value (the value itself is level 1)."""
    value: object = 1
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(("value", "why"), [
    (_nested(6), None), (_nested(7), "nested too deeply"), ({"a": _nested(5)}, None),
    ({"a": _nested(6)}, "nested too deeply"), ([1, [2, b"x"]], "holds a bytes"),
    ({"a": {1: 2}}, "not valid msgpack"), ([[True, None, 1.5, "s", -3]], None),
])
def test_headers_hold_plain_values_at_most_six_deep(value, why):
    """Checked as the header is unpacked, before any field (`info` refuses all of these later,
    for its own reasons)."""
    with pytest.raises(ProtocolError) as refused:
        p.from_frames(_with_header(_step(), info=value))
    if why is None:
        assert "header" not in str(refused.value)
    else:
        assert why in str(refused.value)
