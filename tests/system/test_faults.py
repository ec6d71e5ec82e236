"""Fault tolerance with real processes and sockets: writers killed, frozen or gone for long,
recorders killed. Frames on disk must be exactly what was sent, or an explicit gap."""

from __future__ import annotations

import signal
import time

from tests.support.recorders import (
    NEVER_WAITED_MS,
    PacedRecorder,
    report,
    rows_table,
    session_state,
    steps_by_episode,
)


def test_writer_sigkilled_four_times_at_200_fps(writer_factory, endpoint, data_dir):
    writer = writer_factory().start()
    rec = PacedRecorder(endpoint, data_dir, "--fps", "200", "--episodes", "5", "--seed", "4")
    killed_at = -200
    for _ in range(4):
        # Kill a writer only once it has taken over (acknowledged 600 seqs past the previous
        # kill): kills timed by the game's step count alone hit writers still starting on a
        # busy machine, and the outages added up past the recorder's buffer.
        rec.wait_acked(killed_at + 600)
        killed_at = rec.latest["acked_seq"]
        writer.kill()
        time.sleep(0.3)
        writer = writer_factory().start()
    final = rec.finish()
    assert final["steps"] >= 3000
    trace = [(h["steps"], h["acked_seq"], h["socket_full"], h["resends"], h["backlog"])
             for h in rec.history[::10]]
    assert final["steps_durable"] == final["steps"] and final["steps_dropped"] == 0, trace
    assert final["unconfirmed"] == 0
    assert final["tick_max_ms"] < NEVER_WAITED_MS, final
    table = rows_table(data_dir)
    seqs = table.column("seq").to_pylist()
    assert sorted(seqs) == list(range(1, len(seqs) + 1))  # every message once, none missing
    steps = steps_by_episode(table)
    assert sum(len(s) for s in steps.values()) == final["steps"]
    assert all(sorted(s) == list(range(len(s))) for s in steps.values())
    assert sum(table.column("is_last").to_pylist()) == 5
    report("writer SIGKILLed 4x at 200 FPS", sent=final["steps"],
           durable=sum(len(s) for s in steps.values()), lost=0, duplicated=len(seqs) -
           len(set(seqs)), slowest_tick_ms=round(final["tick_max_ms"], 2))


def test_writer_frozen_for_five_seconds_at_60_fps(writer_factory, endpoint, data_dir):
    writer = writer_factory().start()
    rec = PacedRecorder(endpoint, data_dir, "--fps", "60", "--episodes", "1", "--max-steps",
                        "520", "--seed", "2")  # ~120 steps, 5 s frozen (~300), ~100 after
    rec.wait_steps(120)
    writer.proc.send_signal(signal.SIGSTOP)
    before = dict(rec.latest)
    time.sleep(5)
    during = dict(rec.latest)
    writer.proc.send_signal(signal.SIGCONT)
    final = rec.finish()
    assert during["steps"] - before["steps"] >= 250  # the game went on at 60 FPS
    assert during["backlog"] > before["backlog"]  # ... holding what the writer had not taken
    assert final["tick_max_ms"] < NEVER_WAITED_MS, final  # late frames: reported below
    assert final["steps_durable"] == final["steps"] and final["steps_dropped"] == 0
    assert final["rss_mb"] < 600, final  # bounded: ~300 frames of 100 KB held, not more
    table = rows_table(data_dir)
    assert table.num_rows == final["steps"] + 1
    report("writer SIGSTOPped 5 s at 60 FPS", sent=final["steps"], durable=table.num_rows - 1,
           lost=0, duplicated=0, slowest_tick_ms=round(final["tick_max_ms"], 2),
           late_frames=final["late_frames"], recorder_rss_mb=round(final["rss_mb"]))


def test_writer_gone_longer_than_the_buffer_makes_an_explicit_gap(writer_factory, endpoint,
                                                                  data_dir):
    writer = writer_factory().start()
    rec = PacedRecorder(endpoint, data_dir, "--fps", "100", "--episodes", "1", "--max-steps",
                        "750", "--buffer-mb", "3", "--seed", "3")
    rec.wait_steps(150)
    writer.kill()
    time.sleep(3)  # ~300 frames at 100 FPS; the buffer holds ~30
    writer_factory().start()
    final = rec.finish()
    assert final["steps_dropped"] > 100, final
    assert final["tick_max_ms"] < NEVER_WAITED_MS, final  # the game never waited
    assert final["steps_durable"] + final["steps_dropped"] == final["steps"]
    state = session_state(data_dir)
    assert sum(g["count"] for g in state["gaps"]) == final["steps_dropped"]
    steps = set(steps_by_episode(rows_table(data_dir))[0])
    gap_steps = {s for g in state["gaps"] for s in range(g["first_step"], g["last_step"] + 1)}
    assert len(gap_steps) == final["steps_dropped"]
    assert steps | gap_steps == set(range(final["steps"])) and not steps & gap_steps
    report("writer gone 3 s, 3 MiB buffer, 100 FPS", sent=final["steps"], durable=len(steps),
           lost_in_recorded_gaps=final["steps_dropped"], unaccounted=0, duplicated=0,
           slowest_tick_ms=round(final["tick_max_ms"], 2))


def test_recorder_sigkilled_writer_seals_session_as_aborted(writer_factory, endpoint, data_dir):
    writer = writer_factory("--session-timeout", "2").start()
    rec = PacedRecorder(endpoint, data_dir, "--fps", "100", "--episodes", "3", "--seed", "5")
    rec.wait_steps(300)
    acked = rec.latest["acked_seq"]
    rec.proc.send_signal(signal.SIGKILL)
    rec.proc.wait(10)
    assert acked > 100
    deadline = time.monotonic() + 15
    while session_state(data_dir)["status"] != "aborted":
        assert time.monotonic() < deadline, "session never sealed as aborted"
        time.sleep(0.1)
    assert writer.proc.poll() is None
    seqs = set(rows_table(data_dir).column("seq").to_pylist())
    assert set(range(1, acked + 1)) <= seqs
    report("recorder SIGKILLed", acknowledged=acked, acknowledged_readable=len(
        set(range(1, acked + 1)) & seqs), rows_kept=len(seqs), status="aborted")
    assert not any((data_dir / "BreakoutNoFrameskip-v4" / ".incoming").iterdir())
