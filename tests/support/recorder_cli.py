"""`gymrec-record` in its own process group (as a terminal would run it), for signal tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.support.process_tree import (
    alive,
    arrow_bytes,
    children,
    pids_with,
    shm_files,
    wait_for,
)
from tests.support.processes import ROOT, record_cmd


class RecorderCli:
    """A real `python -m recorder.cli` headless recording; `pid` is the recorder itself (no uv
    in between), and its group is its own, so `signal_group` is a terminal's Ctrl-C."""

    def __init__(self, env_id: str, endpoint: str, data_dir: Path, *extra: str):
        self.env_root = data_dir / env_id
        self.data_dir = data_dir
        self.proc = subprocess.Popen(record_cmd(env_id, endpoint, data_dir, *extra), cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.pid = self.proc.pid
        self.workers: list[int] = []
        self.shm: set[Path] = set()
        self.stdout = self.stderr = ""

    def wait_recording(self, nbytes: int = 300_000, timeout: float = 120) -> None:
        """Wait until the recording runs and `nbytes` of rows are on disk; note the worker
        processes (none when one worker plays in the recorder's own process) and the /dev/shm
        files this recorder maps (to check later that none is left)."""
        wait_for(lambda: arrow_bytes(self.env_root) >= nbytes or self.proc.poll() is not None,
                 timeout, f"{nbytes} bytes of rows")
        assert self.proc.poll() is None, self.communicate()
        self.workers = children(self.pid)
        self.workers = [w for w in self.workers if "spawn_main" in _cmdline(w)]
        self.shm = shm_files([self.pid, *self.workers])

    def signal_pid(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def signal_group(self, sig: int) -> None:
        os.killpg(self.pid, sig)

    def communicate(self, timeout: float = 120) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            out, err = self.proc.communicate()
        self.stdout, self.stderr = out, err
        return self.proc.returncode, out, err

    def kill_all(self) -> None:
        """Leave nothing running: the group, then any worker that left it."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for w in self.workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)

    def counts(self) -> tuple[int, int]:
        """(frames sent, frames durable) from the summary."""
        match = re.search(r"frames sent: (\d+)\s+frames durable: (\d+)", self.stdout)
        assert match, (self.stdout, self.stderr)
        return int(match[1]), int(match[2])

    def leftovers(self, timeout: float = 30) -> None:
        """Assert that the workers end and every /dev/shm file this recorder mapped goes."""
        wait_for(lambda: not any(alive(w) for w in self.workers), timeout,
                 f"workers {self.workers} to end")
        wait_for(lambda: not any(f.exists() for f in self.shm), timeout,
                 f"{sorted(self.shm)} to be removed")


def writer_pids(data_dir: Path) -> list[int]:
    """Writer processes serving `data_dir` (e.g. the one a recorder started)."""
    return pids_with("writer.cli", str(data_dir))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def record_here(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`gymrec-record ARGS...` in this process, for input it must refuse before anything
    starts (no interpreter start-up): its exit code, stdout and stderr. An exception the
    command did not turn into an exit code is raised here, as a traceback would fail a test."""
    from click.testing import CliRunner

    from recorder.cli import main

    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout,
                                       result.stderr)
