"""Helpers shared by bench_loop.py, bench_memory.py and bench_size.py: a real writer process on
a free loopback port, RSS readings from /proc, spreads over repeats and Markdown tables."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ENVS = {"atari": "BreakoutNoFrameskip-v4", "retro": "Airstriker-Genesis-v0",
        "vizdoom": "VizdoomBasic-v1"}


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class Writer:
    """A real `gymrec-writer` process (its defaults: two encoder threads, nice 5) writing into
    `data_dir`; a context manager that stops it with SIGTERM."""

    def __init__(self, data_dir: Path, *extra: str):
        from recorder.delivery.link import probe_writer

        self.endpoint = free_endpoint()
        self.data_dir = data_dir
        self.log = data_dir.parent / f"{data_dir.name}.writer.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "writer.cli", "--endpoint", self.endpoint,
                 "--data-dir", str(data_dir), *extra],
                cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while probe_writer(self.endpoint, 0.3) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the writer did not start:\n{self.log.read_text()}")

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.proc.pid)

    def stop(self) -> None:
        terminate(self.proc)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def terminate(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM, wait up to `timeout` seconds for an orderly exit, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory of a process in MiB: `rss` (VmRSS, all of it), `anon` (its private heap),
    `shmem` (shared memory it has touched, e.g. the pixel ring). NaN once the process is gone."""
    fields = {"VmRSS:": "rss", "RssAnon:": "anon", "RssShmem:": "shmem"}
    out = dict.fromkeys(fields.values(), float("nan"))
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(maxsplit=1)[0] if line else ""
            if name in fields:
                out[fields[name]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and range of one measure over repeats."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt_spread(s: dict[str, float], digits: int = 2) -> str:
    """`1.23 (1.20–1.31)`; just the value when the range is a single point."""
    value = f"{s['median']:.{digits}f}"
    if s["min"] == s["max"]:
        return value
    return f"{value} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
