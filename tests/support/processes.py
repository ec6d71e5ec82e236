"""Real processes for tests: writers, recorders, and stopping them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stop_process(proc: subprocess.Popen, sig: int, timeout: float) -> int:
    """Send `sig`, wait up to `timeout` seconds, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class WriterProcess:
    """A real `gymrec-writer` process; `kill()` is SIGKILL, `restart()` starts a new one."""

    def __init__(self, endpoint: str, data_dir: Path, log: Path, *extra: str):
        self.endpoint, self.data_dir, self.log, self.extra = endpoint, data_dir, log, extra
        self.proc: subprocess.Popen | None = None
        self.probe_keys = None  # CURVE client keys, for a writer started with --curve-key

    def start(self) -> WriterProcess:
        from recorder.delivery.link import probe_writer

        cmd = [sys.executable, "-m", "writer.cli", "--endpoint", self.endpoint, "--data-dir",
               str(self.data_dir), "-v", *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if probe_writer(self.endpoint, 0.3, self.probe_keys) is not None:
                return self
        raise AssertionError("writer did not start: " + self.log.read_text())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        return stop_process(self.proc, signal.SIGTERM, 30)


def record_cmd(env_id: str, endpoint: str, data_dir: Path, *extra: str) -> list[str]:
    """One recorder session (`--workers 1`) unless `extra` asks for more: many tests read the
    session (session_state), and headless recording defaults to one worker per core."""
    return [sys.executable, "-m", "recorder.cli", env_id, "--agent", "random", "--headless",
            "--workers", "1", "--endpoint", endpoint, "--data-dir", str(data_dir), *extra]


def run_record(env_id: str, endpoint: str, data_dir: Path, *extra: str,
               timeout: float = 240, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = None
    if cwd != ROOT:  # elsewhere (a user's project folder): gymrec still importable
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(record_cmd(env_id, endpoint, data_dir, *extra), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_records(*jobs: tuple, timeout: float = 240) -> list[subprocess.CompletedProcess]:
    """Several `run_record(env_id, endpoint, data_dir, *extra)` jobs at once (one writer each,
    or one for all when they share an endpoint and data folder): one waits for its writer or
    its acknowledgements while another computes. Results in the order of `jobs`."""
    procs = [subprocess.Popen(record_cmd(*job), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for job in jobs]
    results = []
    for job, proc in zip(jobs, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        results.append(subprocess.CompletedProcess(record_cmd(*job), proc.returncode, out, err))
    return results


def run_replay(env_id: str, data_dir: Path, *extra: str,
               timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "recorder.replay.cli", env_id, "--data-dir", str(data_dir),
           *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
