"""Errors cross from a recorder worker to its parent as typed records, not strings."""

from __future__ import annotations

import pickle

import pytest

from recorder.headless.loop import WorkerProgress
from recorder.headless.stop import StopRequest
from recorder.headless.workers import PoolResult, WorkerFailure
from shared.errors import GymrecError, RomMissing, UsageError, WriterUnavailable


@pytest.mark.parametrize("error", [WriterUnavailable("the writer refused: disk gone"),
                                   UsageError("bad keymap key 'F13'"), RomMissing("no ROM"),
                                   GymrecError("plain")])
def test_a_failure_comes_back_as_the_same_error(error):
    record = pickle.loads(pickle.dumps(WorkerFailure.of(3, error)))  # as through the pipe
    again = record.to_error()
    assert type(again) is type(error)
    assert str(again) == str(error) and again.exit_code == error.exit_code
    assert record.worker == 3


def test_an_unknown_error_class_is_still_one_line_with_its_code():
    record = WorkerFailure(worker=0, error="NoSuchError", exit_code=9, message="odd")
    again = record.to_error()
    assert isinstance(again, GymrecError) and again.exit_code == 9 and str(again) == "odd"


def test_stop_levels_count_a_signal_seen_twice_once():
    stop = StopRequest()
    try:
        assert not stop.requested
        stop.raise_to(1)  # the parent's first Ctrl-C, forwarded ...
        stop._handle(2, None)  # ... and the same Ctrl-C, seen by the worker itself
        assert stop.requested and not stop.hurry
        stop.raise_to(2)
        assert stop.hurry and stop.first_signal == 2
    finally:
        stop.restore()


@pytest.mark.parametrize("stopped_by, interrupted, code", [(None, False, None), (None, True, 130),
                                                          (2, True, 130), (15, True, 143)])
def test_exit_code_of_a_stopped_pool(stopped_by, interrupted, code):
    workers = [WorkerProgress(0, interrupted=interrupted)]
    result = PoolResult(workers=workers, stopped_by=stopped_by, cut_short=False)
    assert result.interrupted_code == code
