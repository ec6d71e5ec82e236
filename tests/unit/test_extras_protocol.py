"""Extra observations on the wire and in the schema: a session declares them (validated), each
Step / EpisodeEnd / StepBatch carries their raw bytes as frames after the pixels (inline or with
the pixels in shared memory), and the decoder refuses wrong sizes, missing or surplus frames;
the writer's check refuses extras the session did not declare; the Arrow schema matches what
`datasets` builds, and rows hold RAM as uint8 sequences and buffers as lossless PNGs."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from shared import protocol as p
from shared import schema as s
from shared.errors import ProtocolError
from tests.support.messages import make_batch, make_end, make_start, make_step

RAM = {"ram": {"dtype": "uint8", "shape": [128]}}
DOOM = {"depth": {"dtype": "uint8", "shape": [4, 5]},
        "automap": {"dtype": "uint8", "shape": [4, 5, 3]}}
SPACE = {"type": "Discrete", "n": 4, "start": 0}


def _ram(i: int) -> bytes:
    return bytes((i + k) % 256 for k in range(128))


def _round_trip(msg):
    return p.from_frames([bytes(f) for f in p.to_frames(msg)])


def test_a_step_and_an_episode_end_carry_their_extras_after_the_pixels():
    step = make_step(extras={"ram": [128]}, extra_data=[_ram(1)])
    frames = p.to_frames(step)
    assert len(frames) == 4 and bytes(frames[3]) == _ram(1)
    back = _round_trip(step)
    assert back.extras == {"ram": [128]} and [bytes(b) for b in back.extra_data] == [_ram(1)]
    end = make_end(extras={"depth": [4, 5], "automap": [4, 5, 3]},
                   extra_data=[bytes(20), bytes(range(60))])
    back = _round_trip(end)
    assert list(back.extras) == ["depth", "automap"]
    assert [bytes(b) for b in back.extra_data] == [bytes(20), bytes(range(60))]


@pytest.mark.parametrize("inline", [True, False])
def test_a_batch_carries_each_steps_extras_inline_or_beside_shared_memory(inline):
    n = 3
    extra = dict(extras={"ram": [128]}, extra_data=[[_ram(i)] for i in range(n)])
    batch = (make_batch(n, **extra) if inline
             else make_batch(n, slots=[4, 5, 6], pixels=None, **extra))
    frames = p.to_frames(batch)
    assert len(frames) == 2 + (n if inline else 0) + n
    back = _round_trip(batch)
    assert [[bytes(b) for b in step] for step in back.extra_data] == [[_ram(i)] for i in range(n)]
    assert back.slots == ([] if inline else [4, 5, 6])


def test_messages_without_extras_are_as_before():
    assert len(p.to_frames(make_step())) == 3
    assert _round_trip(make_batch(2)).extra_data == []


@pytest.mark.parametrize("frames_of", [
    lambda: p.to_frames(make_step(extras={"ram": [128]}, extra_data=[bytes(127)])),
    lambda: p.to_frames(make_step(extras={"ram": [128]}, extra_data=[_ram(0)]))[:3],
    lambda: [*p.to_frames(make_step(extras={"ram": [128]}, extra_data=[_ram(0)])), b"x"],
    lambda: [*p.to_frames(make_step()), _ram(0)],  # a frame no extra declares
    lambda: p.to_frames(make_batch(2, extras={"ram": [128]},
                                   extra_data=[[_ram(0)], [bytes(129)]])),
    lambda: p.to_frames(make_batch(2, extras={"ram": [128]},
                                   extra_data=[[_ram(0)], [_ram(1)]]))[:-1],
    lambda: p.to_frames(make_batch(2, slots=[0, 1], pixels=None, extras={"ram": [128]},
                                   extra_data=[[_ram(0)], [_ram(1)]]))[:-1],
    lambda: p.to_frames(make_end(extras={"depth": [4, 5]}, extra_data=[bytes(21)])),
    lambda: p.to_frames(make_step(extras={"ram": [0]}, extra_data=[b""])),
    lambda: p.to_frames(make_step(extras={"ram": [128, 2, 2]}, extra_data=[bytes(512)])),
    lambda: p.to_frames(make_step(extras={"ram": "128"}, extra_data=[_ram(0)])),
    lambda: p.to_frames(make_step(extras={"ram": [2**40]}, extra_data=[b""])),
])
def test_hostile_extras_are_refused_by_the_decoder(frames_of):
    with pytest.raises(ProtocolError):
        p.from_frames([bytes(f) for f in frames_of()])


@pytest.mark.parametrize("extras", [
    {"ram": {"dtype": "int16", "shape": [128]}},
    {"image": {"dtype": "uint8", "shape": [4, 5]}},  # a column's name
    {"Ram!": {"dtype": "uint8", "shape": [4]}},
    {"ram": {"dtype": "uint8", "shape": [4, 5, 2]}},  # 2 channels: no image
    {"ram": {"dtype": "uint8", "shape": []}},
    {"ram": {"dtype": "uint8", "shape": [128], "more": 1}},
    {f"x{i}": {"dtype": "uint8", "shape": [1]} for i in range(s.MAX_EXTRAS + 1)},
    {"ram": {"dtype": "uint8", "shape": [s.MAX_EXTRA_BYTES + 1]}},
])
def test_a_session_start_declaring_bad_extras_is_refused(extras):
    with pytest.raises(ProtocolError):
        _round_trip(make_start(extras=extras))


def test_a_session_start_declares_its_extras():
    assert _round_trip(make_start(extras=DOOM)).extras == DOOM


@pytest.mark.parametrize("shapes", [
    {}, {"ram": [64]}, {"ram": [128], "depth": [4, 5]}, {"depth": [4, 5]},
])
def test_the_writer_refuses_extras_the_session_did_not_declare(shapes):
    with pytest.raises(ProtocolError):
        s.check_extras_fit(shapes, RAM)
    s.check_extras_fit({"ram": [128]}, RAM)
    s.check_extras_fit({}, {})
    with pytest.raises(ProtocolError):  # declared order is frame order
        s.check_extras_fit({"automap": [4, 5, 3], "depth": [4, 5]}, DOOM)


def test_the_arrow_schema_with_extras_is_the_one_datasets_builds():
    extras = {**RAM, **DOOM}
    ours = s.arrow_schema(SPACE, {"lives": "int64"}, extras)
    theirs = s.features(SPACE, {"lives": "int64"}, extras).arrow_schema
    assert ours.equals(theirs, check_metadata=False)
    names = ours.names
    assert names.index("info_json") < names.index("ram") < names.index("is_last")
    assert ours.field("ram").type == pa.list_(pa.uint8(), 128)


def test_rows_hold_ram_as_a_sequence_and_buffers_as_lossless_pngs():
    depth = np.arange(20, dtype=np.uint8).reshape(4, 5)
    automap = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    cells = s.extra_cells({**RAM, **DOOM}, [_ram(2), depth.tobytes(), automap.tobytes()])
    assert bytes(cells["ram"]) == _ram(2)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(cells["depth"]["bytes"]))), depth)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(cells["automap"]["bytes"]))),
                          automap)
    step = make_step(extras={"ram": [128]}, extra_data=[_ram(2)])
    row = s.step_row("a" * 32, 1, step, b"jpeg", "0" * 32, s.extra_cells(RAM, step.extra_data))
    table = pa.Table.from_pylist([row], schema=s.arrow_schema(SPACE, None, RAM))
    assert table.column("ram").to_pylist() == [list(_ram(2))]


def test_replay_names_the_first_differing_byte_or_pixel():
    from recorder.replay.checks import extra_difference, recorded_extra

    ram = np.frombuffer(_ram(0), dtype=np.uint8)
    changed = ram.copy()
    changed[0x3A] ^= 0x01
    changed[0x50] ^= 0x01
    assert extra_difference("ram", ram, ram.copy()) is None
    assert extra_difference("ram", ram, changed) == (
        f"RAM byte 0x3a differs (recorded 0x{ram[0x3A]:02x}, replayed 0x{changed[0x3A]:02x})")
    depth = np.arange(20, dtype=np.uint8).reshape(4, 5)
    stored = s.extra_cells(DOOM, [depth.tobytes(), bytes(60)])["depth"]["bytes"]
    recorded = recorded_extra(stored, [4, 5])
    assert np.array_equal(recorded, depth)
    other = depth.copy()
    other[2, 3] = 99
    assert extra_difference("depth", recorded, other) == (
        "depth differs at (2, 3) (recorded 13, replayed 99; 1 values differ)")
    assert "shape differs" in extra_difference("depth", recorded, other[:3])
