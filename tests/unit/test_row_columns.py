"""The writer's column-wise rows (`batch_columns`, `row_columns`, `columns_to_batch`) store
exactly what the row builders (`batch_row`, `final_row`) describe, extras and start states
included, whatever slice of a batch they take."""

from __future__ import annotations

import pyarrow as pa

from shared import schema as s
from tests.support.messages import make_batch, make_end

SID = "0123456789abcdef0123456789abcdef"
SPACE = {"type": "Discrete", "n": 4, "start": 0}
INFO = {"lives": "int64", "x": "float64"}
EXTRAS = {"ram": {"dtype": "uint8", "shape": [4]}, "depth": {"dtype": "uint8", "shape": [2, 3]}}


def _batch(n: int = 5, **overrides):
    fields = dict(session=SID, seq=10, episode=2, first_step=0, seed=9,
                  infos=[{"lives": 3 - i % 2} if i % 3 else {} for i in range(n)],
                  info_jsons=[f'{{"i":{i}}}' for i in range(n)], start_state=b"state")
    return make_batch(n, **{**fields, **overrides})


def _extras(i: int) -> dict:
    return s.extra_cells(EXTRAS, [bytes([i] * 4), bytes([i] * 6)])


def _rows_as_batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def test_a_slice_of_a_batch_is_its_rows():
    schema = s.arrow_schema(SPACE, INFO, EXTRAS)
    batch = _batch()
    for first, stop in ((0, 5), (0, 2), (2, 5), (4, 5)):
        images = [bytes([i]) * 7 for i in range(first, stop)]
        hashes = [f"{i:032x}" for i in range(first, stop)]
        extras = [_extras(i) for i in range(first, stop)]
        columns = s.batch_columns(SID, batch.seq, batch, first, images, hashes, extras)
        assert list(columns) == schema.names
        rows = [s.batch_row(SID, batch.seq, batch, i, images[i - first], hashes[i - first],
                            extras[i - first]) for i in range(first, stop)]
        assert s.columns_to_batch(columns, schema).equals(_rows_as_batch(rows, schema))


def test_batches_without_optional_lists_or_extras_take_the_defaults():
    schema = s.arrow_schema(SPACE)
    batch = _batch(3, infos=[], info_jsons=[], start_state=None, first_step=4)
    columns = s.batch_columns(SID, batch.seq, batch, 1, [b"a", b"b"], [None, None])
    rows = [s.batch_row(SID, batch.seq, batch, i, image) for i, image in ((1, b"a"), (2, b"b"))]
    stored = s.columns_to_batch(columns, schema)
    assert stored.equals(_rows_as_batch(rows, schema))
    assert stored.column("info_json").to_pylist() == ["{}", "{}"]
    assert stored.column("step").to_pylist() == [5, 6]
    assert stored.column("seq").to_pylist() == [11, 12]


def test_single_rows_and_batches_join_column_by_column():
    schema = s.arrow_schema(SPACE, INFO)
    batch = _batch(2)
    end = make_end(session=SID, seq=12, episode=2, step=2, seed=9, info={"lives": 0})
    columns = s.batch_columns(SID, batch.seq, batch, 0, [b"x", b"y"], ["h0", "h1"])
    final = s.final_row(SID, end.seq, end, b"z", SPACE, "h2")
    for name, values in s.row_columns(final).items():
        columns[name] = columns[name] + values
    rows = [s.batch_row(SID, batch.seq, batch, i, image, f"h{i}")
            for i, image in enumerate((b"x", b"y"))] + [final]
    stored = s.columns_to_batch(columns, schema)
    assert stored.equals(_rows_as_batch(rows, schema))
    assert stored.column("is_last").to_pylist() == [False, False, True]
    assert stored.column("image").to_pylist()[2] == {"bytes": b"z", "path": None}
