"""The env's info on its way to the dataset: the rest as JSON (numpy converted, what JSON cannot
hold dropped with one warning naming the key), typed values checked against the session's
declared columns, and the protocol refusing info that is not what it says."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from recorder.envs.base import typed_info
from recorder.info import info_json
from shared import protocol as p
from shared.errors import ProtocolError
from shared.schema import MAX_INFO_JSON, check_info_columns, check_info_fits
from tests.support.messages import make_start, make_step

COLUMNS = {"lives": "int64", "x": "float64", "dead": "bool"}


def test_the_rest_of_an_info_is_json_with_numpy_values_converted():
    info = {"lives": 3, "seeds": (np.uint32(7), np.uint32(9)), "pos": np.array([[1.5, 2]]),
            "name": "e1m1", "flag": np.bool_(True), "nested": {"k": np.int64(4)}}
    assert json.loads(info_json(info, typed={"lives"})) == {
        "seeds": [7, 9], "pos": [[1.5, 2.0]], "name": "e1m1", "flag": True, "nested": {"k": 4}}


def test_an_unrepresentable_value_is_dropped_with_one_warning_naming_its_key():
    info = {"ok": 1, "obj": object(), "nan": float("nan")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(5):
            text = info_json(info, typed=())
    assert json.loads(text) == {"ok": 1}
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2, messages  # once per key, not once per step
    assert "'nan'" in messages[0] and "'obj'" in messages[1]


def test_an_info_over_the_limit_loses_keys_from_the_end():
    info = {"a": 1, "big": "x" * MAX_INFO_JSON}
    with pytest.warns(UserWarning, match="'big'"):
        assert info_json(info, typed=()) == '{"a":1}'


def test_typed_info_takes_each_column_as_its_dtype_and_none_where_missing():
    assert typed_info({"lives": np.int32(2), "x": 3, "dead": 0, "other": 1}, COLUMNS) == {
        "lives": 2, "x": 3.0, "dead": False}
    assert typed_info({"x": "not a number"}, COLUMNS) == {"lives": None, "x": None,
                                                           "dead": None}


@pytest.mark.parametrize("values", [
    {"lives": 3, "x": 1.5, "dead": False}, {"lives": None}, {}, {"x": 2},
])
def test_values_that_fit_their_columns_pass(values):
    check_info_fits(values, COLUMNS)


@pytest.mark.parametrize("values", [
    {"undeclared": 1}, {"lives": 1.5}, {"lives": True}, {"lives": 2**63}, {"x": "1"},
    {"dead": 1}, [1],
])
def test_values_that_do_not_fit_are_refused(values):
    with pytest.raises(ProtocolError):
        check_info_fits(values, COLUMNS)


@pytest.mark.parametrize("columns", [
    {"a": "int32"}, {"": "int64"}, {"a" * 200: "bool"}, {f"c{i}": "bool" for i in range(200)},
])
def test_bad_info_column_declarations_are_refused(columns):
    with pytest.raises(ProtocolError):
        check_info_columns(columns)
    with pytest.raises(ProtocolError):
        p.from_frames(p.to_frames(make_start(info_columns=columns)))


@pytest.mark.parametrize("fields", [
    {"info_json": "[1]"}, {"info_json": "{not json"}, {"info_json": "{}" + " " * MAX_INFO_JSON},
    {"info": {"x": float("inf")}}, {"info": {"x": [1]}},
])
def test_the_protocol_refuses_info_that_is_not_what_it_says(fields):
    with pytest.raises(ProtocolError):
        p.from_frames(p.to_frames(make_step(**fields)))


def test_info_survives_the_wire():
    step = make_step(info={"lives": 3, "x": 0.5, "dead": None}, info_json='{"k":[1,2]}')
    back = p.from_frames(p.to_frames(step))
    assert (back.info, back.info_json) == (step.info, step.info_json)


def _session_file(root, start: dict) -> None:
    sessions = root / ".meta" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "s.json").write_text(json.dumps({"start": start}))


def test_a_session_with_other_info_columns_cannot_join_a_dataset(tmp_path):
    """Its rows would not load beside the others' (load_dataset: one schema per dataset)."""
    from dataclasses import asdict

    from shared.layout import DatasetLayout
    from writer.store.session import dataset_mismatch

    atari = make_start(info_columns={"lives": "int64"})
    layout = DatasetLayout(tmp_path / "atari")
    _session_file(layout.root, asdict(atari))
    assert dataset_mismatch(layout, make_start(info_columns={"lives": "int64"}), []) == ""
    why = dataset_mismatch(layout, make_start(info_columns={"x": "float64"}), [])
    assert "info columns" in why and "another --data-dir" in why
    assert "info columns" in dataset_mismatch(DatasetLayout(tmp_path / "none"),
                                              make_start(), [atari])
    before = {k: v for k, v in asdict(atari).items() if k != "info_columns"}
    old = DatasetLayout(tmp_path / "old")
    _session_file(old.root, before)  # written before gymrec stored hashes and info
    assert "earlier gymrec" in dataset_mismatch(old, atari, [])
