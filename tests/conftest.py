"""Fixtures that start real writer processes on real loopback ports."""

from __future__ import annotations

import atexit
import compileall
import hashlib
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import ROOT, WriterProcess, free_endpoint, run_record

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Tests never touch the user's caches or the network.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="gymrec-hf-")
# ... nor the user's gymrec config file (~/.config/gymrec/config.toml): an empty config home.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="gymrec-config-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _made in (os.environ["HF_HOME"], os.environ["XDG_CONFIG_HOME"]):
    atexit.register(shutil.rmtree, _made, ignore_errors=True)


def _warm_bytecode() -> None:
    """Bytecode, as a user's machine has it (pip compiles at install, Python caches what it
    imports): where PYTHONDONTWRITEBYTECODE is set (CI), each of the hundreds of processes the
    tests start would compile numpy, gymnasium, pyarrow and gymrec from source again (~0.5 s
    each). Once per environment: a warm one is checked in well under a second in one process;
    a cold one is compiled on every core."""
    import importlib.util

    import numpy

    warm = Path(importlib.util.cache_from_source(numpy.__file__)).exists()
    paths = sysconfig.get_paths()
    for folder in dict.fromkeys([paths["purelib"], paths["platlib"], *(
            str(ROOT / p) for p in ("recorder", "writer", "shared", "scripts"))]):
        compileall.compile_dir(folder, quiet=2, workers=1 if warm else os.cpu_count() or 1)


if sys.dont_write_bytecode:
    _warm_bytecode()


BREAKOUT_RECORDING = ("BreakoutNoFrameskip-v4", "--episodes", "2", "--max-steps", "120",
                      "--seed", "7")


@pytest.fixture(scope="session")
def breakout_recording(tmp_path_factory) -> Path:
    """A data folder holding one finished headless session of BREAKOUT_RECORDING (2 episodes
    of 120 steps), recorded once for the whole run: tests that only read it share it, tests
    that change it copy it first (its writer is stopped: nothing else writes there). Checked
    unchanged at the end of the run."""
    root = tmp_path_factory.mktemp("breakout-recording")
    writer = WriterProcess(free_endpoint(), root / "data", root / "writer.log").start()
    try:
        result = run_record(BREAKOUT_RECORDING[0], writer.endpoint, writer.data_dir,
                            *BREAKOUT_RECORDING[1:])
    finally:
        writer.stop()
    assert result.returncode == 0, result.stderr
    before = _digests(writer.data_dir)
    yield writer.data_dir
    assert _digests(writer.data_dir) == before, "a test changed the shared breakout_recording"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def endpoint() -> str:
    return free_endpoint()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def writer_factory(tmp_path, endpoint, data_dir):
    started: list[WriterProcess] = []

    def make(*extra: str) -> WriterProcess:
        w = WriterProcess(endpoint, data_dir, tmp_path / f"writer{len(started)}.log", *extra)
        started.append(w)
        return w

    yield make
    from tests.support.recorders import PacedRecorder

    while PacedRecorder.running:  # recorders a failed test left running: Ctrl-C them first
        PacedRecorder.running.pop().interrupt()
    for w in started:
        if w.proc is not None:
            w.stop()


