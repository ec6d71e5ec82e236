"""A recorder returns as soon as its data is durable, and never loses or hangs because of a
writer that another recorder started and that is just exiting idle (or gone)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from tests.support.datasets_check import assert_exact_episodes, load
from tests.support.process_tree import alive, wait_for
from tests.support.processes import ROOT, WriterProcess, free_endpoint, record_cmd, run_record
from tests.support.recorder_cli import writer_pids

ENV = "BreakoutNoFrameskip-v4"
SMALL = ("--episodes", "1", "--max-steps", "15", "--workers", "1")


def _counts(out: str) -> tuple[int, int]:
    match = re.search(r"frames sent: (\d+)\s+frames durable: (\d+)", out)
    assert match, out
    return int(match[1]), int(match[2])


def _rows_per_run(data_dir) -> int:
    """Steps on disk (final rows left out), each episode whole."""
    episodes = assert_exact_episodes(load(data_dir, ENV))
    return sum(len(rows) - 1 for rows in episodes.values())


def test_the_recorder_returns_without_waiting_for_the_writer_it_started(tmp_path):
    endpoint, data_dir = free_endpoint(), tmp_path / "data"
    done = run_record(ENV, endpoint, data_dir, *SMALL, "--seed", "1")
    assert done.returncode == 0, done.stderr
    sent, durable = _counts(done.stdout)
    assert sent == durable == 15
    # Durable before the command returned: the writer it started lingers, then goes by itself.
    (writer,) = writer_pids(data_dir)
    # It wrote rows without pandas (pyarrow imports it for its first array unless told it has
    # none: seconds of start-up): none of pandas' compiled modules is mapped.
    assert "pandas" not in Path(f"/proc/{writer}/maps").read_text()
    assert _rows_per_run(data_dir) == 15
    wait_for(lambda: not alive(writer), 30, "the auto-started writer to exit when idle")


def test_back_to_back_recorders_around_the_idle_deadline_lose_nothing(tmp_path):
    """Each recorder starts when the writer the previous one started is near its idle exit: it
    finds it answering (and keeps it), or gone (and starts one), or exiting (and waits for it
    to free the port and folder). Every run exits 0 with every frame durable."""
    endpoint, data_dir = free_endpoint(), tmp_path / "data"
    sent_total = 0
    # A recorder probes ~1 s after it is launched (its imports): launch delays that put the
    # probe before, at and after the previous writer's deadline, on a loaded machine too.
    for i, delay in enumerate((0.0, 0.8, 1.4, 2.0, 2.6)):
        time.sleep(delay)
        done = run_record(ENV, endpoint, data_dir, *SMALL, "--seed", str(i), timeout=120)
        assert done.returncode == 0, (delay, done.stdout, done.stderr)
        sent, durable = _counts(done.stdout)
        assert sent == durable == 15, (delay, done.stdout, done.stderr)
        sent_total += sent
    assert _rows_per_run(data_dir) == sent_total


def test_a_writer_found_running_that_vanishes_is_replaced_and_nothing_is_lost(tmp_path):
    """The recorder did not start the writer it found; when that one dies mid-recording, the
    recorder starts one in its place (before: it waited for the stall timeout, then dropped
    frames)."""
    endpoint, data_dir = free_endpoint(), tmp_path / "data"
    writer = WriterProcess(endpoint, data_dir, tmp_path / "writer.log").start()
    cmd = record_cmd(ENV, endpoint, data_dir, "--episodes", "2", "--max-steps", "150",
                     "--realtime", "--fps", "100", "--workers", "1", "--stall-timeout", "20",
                     "--seed", "5")
    rec = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        wait_for(lambda: "session" in writer.log.read_text() and "from" in
                 writer.log.read_text(), 60, "the recorder's session to open")
        time.sleep(0.5)
        writer.kill()
        out, err = rec.communicate(timeout=120)
    finally:
        if rec.poll() is None:
            rec.send_signal(signal.SIGKILL)
            rec.wait()
    assert rec.returncode == 0, (out, err)
    assert "stopped answering; started a new one" in err, err
    sent, durable = _counts(out)
    assert sent == durable == 300, (out, err)
    assert "gaps (dropped frames): 0" in out
    assert _rows_per_run(data_dir) == 300
    for pid in writer_pids(data_dir):  # the replacement exits by itself once idle
        wait_for(lambda pid=pid: not alive(pid), 30, "the replacement writer to exit")
