"""A hand-started writer serving several recorders, and surviving SIGKILL + restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from shared.layout import DatasetLayout
from tests.support.datasets_check import assert_exact_episodes, load
from tests.support.processes import ROOT, record_cmd
from tests.support.recorder_cli import writer_pids
from writer.store.shards import read_complete_batches
from writer.store.verify import verify_dataset


def test_hand_started_writer_serves_two_recorders_at_once(writer_factory, endpoint, data_dir):
    writer = writer_factory().start()
    cmds = [record_cmd("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "2",
                       "--max-steps", "300", "--seed", str(seed)) for seed in (1, 2)]
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in cmds]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert writer.proc.poll() is None  # a hand-started writer keeps serving
    ds = load(data_dir, "BreakoutNoFrameskip-v4")
    episodes = assert_exact_episodes(ds)
    assert len(episodes) == 4 and len(set(ds["session_id"])) == 2
    assert all(len(rows) == 301 for rows in episodes.values())


def test_writer_sigkilled_and_restarted_loses_and_duplicates_nothing(writer_factory, endpoint,
                                                                     data_dir):
    writer = writer_factory().start()
    cmd = record_cmd("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "12",
                     "--max-steps", "1500", "--seed", "9")
    recorder = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    incoming = data_dir / "BreakoutNoFrameskip-v4" / ".incoming"
    deadline = time.monotonic() + 60
    # Kill once the open shard holds a complete batch (a big file alone may end in the middle
    # of its first batch: then nothing was durable yet and the test proved nothing).
    while not any(read_complete_batches(p)[1] for p in incoming.glob("*.arrow")):
        assert time.monotonic() < deadline and recorder.poll() is None
        time.sleep(0.01)
    writer.kill()  # mid-session: an open shard with rows in it, frames in flight
    time.sleep(0.5)
    restarted = writer_factory().start()
    out, err = recorder.communicate(timeout=240)
    assert recorder.returncode == 0, err
    resumed = [ln for ln in restarted.log.read_text().splitlines() if "resuming after seq" in ln]
    assert resumed and int(resumed[0].split("resuming after seq ")[1].split(")")[0]) > 0
    sent = int(out.split("frames sent: ")[1].split()[0])
    assert f"frames durable: {sent} " in out and "gaps (dropped frames): 0" in out
    ds = load(data_dir, "BreakoutNoFrameskip-v4")
    episodes = assert_exact_episodes(ds)
    assert len(episodes) == 12
    assert sum(len(rows) - 1 for rows in episodes.values()) == sent
    assert ds["seq"] and sorted(ds["seq"]) == list(range(1, len(ds) + 1))


def _kill_writers(data_dir) -> None:
    """SIGKILL whichever writer serves `data_dir`: the test's, or one the recorder started in
    its place (a recorder whose writer stops answering starts one itself)."""
    deadline = time.monotonic() + 10
    while pids := writer_pids(data_dir):
        assert time.monotonic() < deadline, f"writers {pids} outlived SIGKILL"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _start_unless_replaced(writer_factory, *flags: str) -> None:
    """Start the test's next writer, unless the recorder's own replacement took the data
    folder first (its restart can take seconds with hundreds of 20-row shards to look over)."""
    try:
        writer_factory(*flags).start()
    except AssertionError as refused:
        if "another gymrec-writer is using" not in str(refused):
            raise


def test_kills_at_random_moments_while_sealing_constantly(writer_factory, endpoint, data_dir):
    """Shards of 20 rows: the writer is nearly always sealing, renaming or updating the
    manifest when it is killed. Afterwards every step exists exactly once."""
    import random

    rng = random.Random(12)
    writer_factory("--shard-rows", "20").start()
    cmd = record_cmd("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "150",
                     "--max-steps", "60", "--seed", "21")
    recorder = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    sessions = data_dir / "BreakoutNoFrameskip-v4" / ".meta" / "sessions"
    deadline = time.monotonic() + 60  # the recorder has found the writer (else it starts one)
    while not any(sessions.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    kills = 0
    for _ in range(6):
        time.sleep(rng.uniform(0.3, 1.2))
        if recorder.poll() is not None:
            break
        _kill_writers(data_dir)
        kills += 1
        _start_unless_replaced(writer_factory, "--shard-rows", "20")
    out, err = recorder.communicate(timeout=240)
    assert recorder.returncode == 0, err
    assert kills >= 4
    ds = load(data_dir, "BreakoutNoFrameskip-v4")
    episodes = assert_exact_episodes(ds)
    assert len(episodes) == 150
    sent = int(out.split("frames sent: ")[1].split()[0])
    assert sum(len(rows) - 1 for rows in episodes.values()) == sent
    assert sorted(ds["seq"]) == list(range(1, len(ds) + 1))
    assert verify_dataset(DatasetLayout(data_dir / "BreakoutNoFrameskip-v4")).ok
