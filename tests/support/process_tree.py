"""What a process left behind: its children, its /dev/shm files, processes named by their
command line. Linux /proc only."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], object], timeout: float, what: str,
             every: float = 0.05) -> object:
    """Poll `condition` until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    """The direct children of `pid`."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def pids_with(*needles: str) -> list[int]:
    """Processes whose command line contains every one of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if all(n in cmdline for n in needles) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def blocked_signals(pid: int) -> set[int]:
    """The signals `pid` blocks (its SigBlk mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return {n + 1 for n in range(64) if mask >> n & 1}
    return set()


def holds(pid: int, path: Path) -> bool:
    """True when `pid` has `path` open."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if Path(os.readlink(fd)) == path:
                return True
        except OSError:
            pass
    return False


def shm_files(pids) -> set[Path]:
    """The /dev/shm files (rings, semaphores) that `pids` have mapped right now."""
    files = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            if " /dev/shm/" in line:
                files.add(Path(line.split(" /dev/shm/", 1)[1].removesuffix(" (deleted)"))
                          .name)
    return {Path("/dev/shm") / name for name in files}


def arrow_bytes(env_root: Path) -> int:
    """Bytes in an env's shards, open or sealed: grows as rows become durable."""
    return sum(f.stat().st_size for f in env_root.glob("*/*.arrow") if f.is_file())
