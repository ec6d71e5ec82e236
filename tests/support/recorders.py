"""A paced recorder in a subprocess, and readers of what it left on disk."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pyarrow as pa

from tests.support.processes import ROOT, stop_process

# The slowest step (ms) of a recorder that never waited for its writer. Waiting would take the
# writer's down time (seconds); anything shorter is the shared machine's scheduling, whose
# numbers belong to the benchmarks (scripts/bench_loop.py, FAULT-REPORT lines), not to a test.
NEVER_WAITED_MS = 500


class PacedRecorder:
    """tests/support/paced_session.py in a subprocess; `latest` is its last progress report.
    Every one
    still running when its test ends gets Ctrl-C (so it removes its shared-memory ring)."""

    running: list[PacedRecorder] = []

    def __init__(self, endpoint, data_dir, *args: str):
        PacedRecorder.running.append(self)
        cmd = [sys.executable, "-m", "tests.support.paced_session", endpoint, str(data_dir), *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.latest: dict = {}
        self.history: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.latest = json.loads(line)
                self.history.append(self.latest)

    def wait_steps(self, steps: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.latest.get("steps", 0) < steps:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.stderr()
            time.sleep(0.02)

    def wait_acked(self, seq: int, timeout: float = 120) -> None:
        """Wait until the writer has acknowledged `seq` (the writer's progress, not the game's:
        a writer that is still starting has acknowledged nothing yet)."""
        deadline = time.monotonic() + timeout
        while self.latest.get("acked_seq", -1) < seq:
            assert time.monotonic() < deadline, f"acked {self.latest.get('acked_seq')} < {seq}"
            assert self.proc.poll() is None or self.latest.get("done"), self.stderr()
            time.sleep(0.02)

    def finish(self, timeout: float = 120) -> dict:
        self.proc.wait(timeout)
        self._reader.join(10)
        assert self.proc.returncode == 0, self.stderr()
        assert self.latest["done"]
        return self.latest

    def ctrl_c(self, timeout: float = 120) -> dict:
        """End a recording that would go on for long (many episodes) once its test has what it
        needs: SIGINT ends the episode in progress as aborted and drains everything sent; then
        `finish`. The result says `interrupted` (the recorder was still running until now)."""
        self.proc.send_signal(signal.SIGINT)
        final = self.finish(timeout)
        assert final["interrupted"], final
        return final

    def interrupt(self) -> None:
        stop_process(self.proc, signal.SIGINT, 15)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.poll() is not None else ""


def report(scenario: str, **figures) -> None:
    """One line per scenario for docs/FAULTS.md
    (`pytest -s tests/system/test_faults.py | grep FAULT`)."""
    print("FAULT-REPORT", json.dumps({"scenario": scenario, **figures}))


def rows_table(data_dir, env="BreakoutNoFrameskip-v4") -> pa.Table:
    files = sorted((data_dir / env / "data").glob("*.arrow"))
    tables = [pa.ipc.open_stream(str(f)).read_all() for f in files]
    return pa.concat_tables(tables).drop_columns(["image"]) if tables else None


def session_state(data_dir, env="BreakoutNoFrameskip-v4") -> dict:
    (path,) = (data_dir / env / ".meta" / "sessions").glob("*.json")
    return json.loads(path.read_text())


def steps_by_episode(table: pa.Table) -> dict[int, list[int]]:
    steps = defaultdict(list)
    for ep, step, last in zip(table.column("episode_index").to_pylist(),
                              table.column("step").to_pylist(),
                              table.column("is_last").to_pylist(), strict=True):
        if not last:
            steps[ep].append(step)
    return steps
