"""Disk full (a small tmpfs): acknowledgements stop, the game goes on, sealed data stays intact,
and once space is freed the writer catches up and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from shared.layout import DatasetLayout
from tests.support.recorders import (
    NEVER_WAITED_MS,
    PacedRecorder,
    rows_table,
    steps_by_episode,
)
from writer.store.verify import verify_dataset


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
                   check=True)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path) -> None:
    # Unbuffered: a buffered file kept the tail of its last partial write and raised ENOSPC
    # again from close(), outside the try (3 runs in 7 failed so).
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


def test_disk_full_pauses_acks_and_loses_nothing(small_disk, tmp_path, endpoint):
    from tests.support.processes import WriterProcess

    data_dir = small_disk / "data"
    writer = WriterProcess(endpoint, data_dir, tmp_path / "writer.log", "--shard-rows",
                           "300").start()
    try:
        # Many episodes: it plays until the writer has caught up, then is stopped (Ctrl-C).
        rec = PacedRecorder(endpoint, data_dir, "--fps", "100", "--episodes", "1000",
                            "--max-steps", "400", "--seed", "6")
        rec.wait_steps(450)  # episode 0 (400 steps) is sealed in its own shard by now
        _fill(small_disk / "filler")
        time.sleep(0.5)
        before = dict(rec.latest)
        time.sleep(3)
        during = dict(rec.latest)
        assert during["steps"] - before["steps"] > 200  # the game kept going
        assert during["acked_seq"] - before["acked_seq"] < 20, (before, during)  # acks stopped
        assert writer.proc.poll() is None
        layout = DatasetLayout(data_dir / "BreakoutNoFrameskip-v4")
        report = verify_dataset(layout)  # what was sealed stays intact; a seal cut short by
        assert report.shards >= 1  # the full disk is only "not in manifest" yet, never corrupt
        assert {p.kind for p in report.problems} <= {"not in manifest"}, report
        (small_disk / "filler").unlink()
        rec.wait_acked(rec.latest["steps"])  # acks resume: what the full disk held is written
        final = rec.ctrl_c()
    finally:
        writer.stop()
    assert final["steps_durable"] == final["steps"] and final["steps_dropped"] == 0, final
    assert final["tick_max_ms"] < NEVER_WAITED_MS, final
    steps = steps_by_episode(rows_table(data_dir))
    assert sum(len(s) for s in steps.values()) == final["steps"]
    assert all(sorted(s) == list(range(len(s))) for s in steps.values())
    assert verify_dataset(layout).ok
    print("FAULT-REPORT", json.dumps({
        "scenario": "disk full 3.5 s (24 MiB tmpfs), 100 FPS", "sent": final["steps"],
        "durable": final["steps_durable"], "lost": 0,
        "acks_during_full": during["acked_seq"] - before["acked_seq"],
        "slowest_tick_ms": round(final["tick_max_ms"], 2)}))
    assert "write failed, will retry" in (tmp_path / "writer.log").read_text()
