"""Fixtures that start real writer processes on real loopback ports."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import WriterProcess, free_endpoint

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Tests never touch the user's caches or the network.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="gymrec-hf-")
# ... nor the user's gymrec config file (~/.config/gymrec/config.toml): an empty config home.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="gymrec-config-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


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


