"""Bad input gets one clear line and a non-zero exit code, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support.processes import ROOT, free_endpoint, run_record
from tests.support.recorder_cli import record_here


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("gymrec-")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("env_id", "code", "words"), [
    ("Breakout", 2, "did you mean"),
    ("VizdoomBasic-v0", 2, "VizdoomBasic-v1"),
    ("SonicTheHedgehog-Genesis", 3, "retro.import"),
    ("../../etc/passwd", 2, "unknown env id"),
])
def test_bad_env_ids(endpoint, data_dir, env_id, code, words):
    # In this process (refused before anything starts; every command's bad input as a real
    # process: test_bad_input_sweep).
    result = record_here(env_id, "--agent", "random", "--headless", "--episodes", "1",
                         "--endpoint", endpoint, "--data-dir", str(data_dir))
    assert result.returncode == code
    assert words in _one_line_error(result)
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_busy_endpoint_held_by_something_else(data_dir):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        endpoint = f"tcp://127.0.0.1:{squatter.getsockname()[1]}"
        result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "1",
                            timeout=120)
    assert result.returncode == 4
    assert "is in use by something that is not a gymrec writer" in _one_line_error(result)


def test_writer_refuses_a_busy_port_and_a_second_writer_on_one_folder(writer_factory, data_dir):
    first = writer_factory().start()
    busy = subprocess.run(
        [sys.executable, "-m", "writer.cli", "--endpoint", first.endpoint, "--data-dir",
         str(data_dir.parent / "other")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert busy.returncode == 4 and "already in use" in _one_line_error(busy)
    same_folder = subprocess.run(
        [sys.executable, "-m", "writer.cli", "--endpoint", free_endpoint(), "--data-dir",
         str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert same_folder.returncode == 6
    assert "another gymrec-writer" in _one_line_error(same_folder)


def test_recording_needs_an_env_id(endpoint, data_dir):
    result = record_here("--agent", "random", "--headless")
    assert result.returncode == 2 and "missing ENV_ID" in _one_line_error(result)


def test_a_person_s_game_loop_never_encodes(endpoint, data_dir):
    result = record_here("BreakoutNoFrameskip-v4", "--encode-in", "recorder", "--endpoint",
                         endpoint, "--data-dir", str(data_dir))
    assert result.returncode == 2 and "--encode-in recorder needs --headless" in \
        _one_line_error(result)
    assert not data_dir.exists()  # refused before a writer was started
