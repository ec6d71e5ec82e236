"""The step record and the one row builder: a step's values are declared once and reach the
wire messages and the dataset columns unchanged."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pyarrow as pa
import pytest

from shared import protocol as p
from shared import schema as s
from tests.support.messages import make_batch, make_end, make_step

SID = "0123456789abcdef0123456789abcdef"
SPACE = {"type": "Discrete", "n": 4, "start": 0}


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _per_step(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("per_step")}


def test_each_step_value_has_its_field_in_every_message_and_a_column():
    for value in s.STEP_VALUES:
        assert value.name in _names(s.StepData)
        assert value.name in _names(p.Step)
        assert value.batch_name in _per_step(p.StepBatch)  # one per step, lengths checked
        assert value.name in s.COLUMNS
        if value.in_final_row:
            assert value.name in _names(p.EpisodeEnd)
    fixed = {"session_id", "episode_id", "episode_index", "seed", "step", "image", "frame_hash",
             "start_state", "is_last", "seq"}
    assert set(s.COLUMNS) == fixed | {v.name for v in s.STEP_VALUES}
    assert len(s.COLUMNS) == len(set(s.COLUMNS))


def _batch() -> p.StepBatch:
    return make_batch(2, session=SID, seq=10, episode=2, first_step=5, seed=9,
                      timestamps=[1.0, 1.5], actions=[3, 1], rewards=[1, 0.5],
                      terminated=[False, True], slots=[0, 1], pixels=None,
                      infos=[{"lives": 3}, {"lives": 2}], info_jsons=['{"a":[1]}', "{}"])


def test_a_batched_step_and_a_single_step_make_the_same_row():
    batch = _batch()
    for i in range(batch.count):
        values = {v.name: getattr(batch, v.batch_name)[i] for v in s.STEP_VALUES}
        single = make_step(session=SID, seq=batch.seq + i, episode=batch.episode,
                           step=batch.first_step + i, seed=batch.seed, **values)
        assert s.batch_row(SID, batch.seq, batch, i, b"jpg") == \
            s.step_row(SID, batch.seq + i, single, b"jpg")


def test_rows_fit_the_schema_and_the_final_row_holds_fill_values():
    batch = _batch()
    end = make_end(session=SID, seq=12, episode=2, step=7, seed=9, timestamp=2.0)
    rows = [s.batch_row(SID, batch.seq, batch, i, b"jpg") for i in range(2)]
    rows.append(s.final_row(SID, end.seq, end, b"end", SPACE))
    table = pa.Table.from_pylist(rows, schema=s.arrow_schema(SPACE))
    assert table.column("step").to_pylist() == [5, 6, 7]
    assert table.column("seq").to_pylist() == [10, 11, 12]
    assert table.column("reward").to_pylist() == [1.0, 0.5, 0.0]
    assert table.column("action").to_pylist() == [3, 1, -1]
    assert table.column("is_last").to_pylist() == [False, False, True]
    assert table.column("terminated").to_pylist() == [False, True, True]
    assert table.column("timestamp").to_pylist() == [1.0, 1.5, 2.0]
    assert set(table.column("episode_id").to_pylist()) == {s.episode_id(SID, 2)}


@pytest.mark.parametrize("space", [
    {"type": "Discrete", "n": 4, "start": 0},
    {"type": "MultiBinary", "n": 12},
    {"type": "MultiDiscrete", "nvec": [3, 4]},
    {"type": "Box", "shape": [2, 3], "low": [0.0] * 6, "high": [1.0] * 6, "dtype": "float32"},
    {"type": "Dict", "spaces": {"a": {"type": "Discrete", "n": 2, "start": 0},
                                "b": {"type": "MultiBinary", "n": 3}}},
])
def test_arrow_schema_built_without_datasets_is_what_datasets_builds(space):
    """The writer builds its schema without importing `datasets` (2 s at start-up); it must be
    exactly `Features.arrow_schema`, metadata included, or load_dataset would decode otherwise."""
    ours = s.arrow_schema(space)
    theirs = s.features(space).arrow_schema
    assert ours.equals(theirs, check_metadata=True), (ours, theirs)


def test_the_writer_does_not_import_datasets_to_serve():
    code = ("import sys, writer.cli, writer.daemon, writer.store.session, shared.schema; "
            "shared.schema.arrow_schema({'type': 'Discrete', 'n': 4, 'start': 0}); "
            "print('datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("space", "fill"), [
    ({"type": "Discrete", "n": 4, "start": 0}, -1),
    ({"type": "MultiBinary", "n": 3}, [-1, -1, -1]),
    ({"type": "MultiDiscrete", "nvec": [3, 4]}, [-1, -1]),
    ({"type": "Dict", "spaces": {"a": {"type": "Discrete", "n": 2, "start": 0},
                                "b": {"type": "MultiBinary", "n": 2}}}, {"a": -1, "b": [-1, -1]}),
])
def test_a_final_rows_fill_action_fits_the_column_with_no_null(space, fill):
    end = make_end(session=SID, seq=3, episode=0, step=2, seed=1, timestamp=2.0)
    table = pa.Table.from_pylist([s.final_row(SID, end.seq, end, b"end", space)],
                                 schema=s.arrow_schema(space))
    assert table.column("action").to_pylist() == [fill]
    assert table.column("action").null_count == 0 and table.column("reward").null_count == 0


def test_a_box_final_row_holds_nan_in_every_slot():
    space = {"type": "Box", "shape": [2, 3], "low": [0.0] * 6, "high": [1.0] * 6,
             "dtype": "float32"}
    end = make_end(session=SID, seq=3, episode=0, step=2, seed=1, timestamp=2.0)
    action = pa.Table.from_pylist([s.final_row(SID, end.seq, end, b"end", space)],
                                  schema=s.arrow_schema(space)).column("action")
    assert action.null_count == 0
    assert [v != v for v in action.to_pylist()[0]] == [True] * 6  # NaN
