"""The audit of scripts/stress_faults.py finds what it is there to find (its pure parts)."""

from __future__ import annotations

import importlib.util
import sys

from tests.support.processes import ROOT

_spec = importlib.util.spec_from_file_location("stress_faults",
                                               ROOT / "scripts" / "stress_faults.py")
stress = importlib.util.module_from_spec(_spec)
sys.modules["stress_faults"] = stress  # its dataclasses look their module up while being made
_spec.loader.exec_module(stress)


def _rows(sid: str, steps: int) -> list[dict]:
    """One episode of `steps` steps and its final row, seqs 1..steps+1."""
    rows = [{"session_id": sid, "seq": i + 1, "episode_index": 0, "step": i, "is_last": False,
             "terminated": False, "truncated": False} for i in range(steps)]
    rows.append({"session_id": sid, "seq": steps + 1, "episode_index": 0, "step": steps,
                 "is_last": True, "terminated": True, "truncated": False})
    return rows


def _state(outcome: str = "terminated", steps: int = 3) -> dict:
    return {"status": "ended",
            "episodes": [{"episode_index": 0, "steps": steps, "outcome": outcome}]}


def _recording(sent: int, durable: int | None = None, dropped: int = 0, sessions=("a",)):
    return stress.Recording(seed=1, returncode=0, sent=sent,
                            durable=sent if durable is None else durable, dropped=dropped,
                            output="", sessions=list(sessions))


def test_a_clean_run_has_no_problems():
    assert stress.audit_rows(_rows("a", 3), {"a": _state()}, [_recording(3)]) == []


def test_duplicates_missing_rows_lost_episodes_and_wrong_counts_are_problems():
    rows = _rows("a", 3)
    duplicated = rows + [rows[1]]
    assert any("1 duplicate and 0 missing" in p for p in stress.audit_rows(
        duplicated, {"a": _state()}, [_recording(3)]))
    holed = [r for r in rows if r["seq"] != 2]
    problems = stress.audit_rows(holed, {"a": _state()}, [_recording(3)])
    assert any("0 duplicate and 1 missing" in p for p in problems)
    assert any("step rows on disk 2" in p for p in problems)
    assert stress.audit_rows(rows, {"a": {**_state(), "episodes": []}}, [_recording(3)])
    assert stress.audit_rows(rows, {"a": _state("aborted")}, [_recording(3)])
    assert stress.audit_rows(rows, {"a": _state()}, [_recording(4, 3)])
    assert stress.audit_rows(rows, {"a": {**_state(), "status": "recording"}},
                             [_recording(3)])


def test_a_recording_counts_the_sessions_of_all_its_workers():
    rows = _rows("a", 3) + _rows("b", 2)
    states = {"a": _state(), "b": _state(steps=2)}
    assert stress.audit_rows(rows, states, [_recording(5, sessions=("a", "b"))]) == []
    short = stress.audit_rows(rows, states, [_recording(5)])
    assert any("step rows on disk 3" in p for p in short)
    assert any("session b: rows of no recording" in p for p in short)
    assert any("no session file" in p
               for p in stress.audit_rows([], {}, [_recording(0, sessions=())]))


def test_summary_line_and_percentiles():
    line = "episodes: 2  frames sent: 400  frames durable: 398  gaps (dropped frames): 2"
    assert stress.parse_summary(line) == (400, 398, 2)
    assert stress.parse_summary("crashed") == (-1, -1, -1)
    values = [float(v) for v in range(1, 101)]
    assert (stress.percentile(values, 50), stress.percentile(values, 99)) == (50.0, 99.0)
