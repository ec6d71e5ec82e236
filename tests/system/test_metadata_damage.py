"""Damaged metadata never stops the writer: the damaged file is moved to `.meta/damaged/` with
one log line, and what it said is rebuilt from the shards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.support.datasets_check import assert_exact_episodes, load
from tests.support.processes import ROOT, run_record

ENV = "BreakoutNoFrameskip-v4"


@pytest.fixture(scope="module")
def recorded(breakout_recording):
    """One small recording (conftest's: 2 episodes of 120 steps), copied afresh by each test."""
    return breakout_recording


@pytest.fixture
def dataset(recorded, data_dir):
    shutil.copytree(recorded, data_dir)
    return data_dir / ENV


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _damage_lines(log: str) -> list[str]:
    assert "Traceback" not in log, log
    return [ln for ln in log.splitlines() if "is damaged" in ln]


def _verify(data_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "writer.cli", "verify", ENV, "--data-dir",
                           str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_python_m_writer_cli_runs_its_subcommands(dataset, data_dir):
    result = _verify(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all match their checksums" in result.stdout


def test_truncated_manifest_is_moved_aside_and_rebuilt(dataset, data_dir, writer_factory):
    manifest = dataset / ".meta" / "manifest.json"
    listed = json.loads(manifest.read_text())["shards"]
    damaged = manifest.read_bytes()[:100]
    manifest.write_bytes(damaged)
    result = _verify(data_dir)  # verify alone: one line about it, then the shards check out
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(_damage_lines(result.stderr)) == 1 and "manifest.json" in result.stderr
    manifest.write_bytes(damaged)  # and once more, for a writer to find at its start
    writer = writer_factory().start()
    writer.stop()
    assert len(_damage_lines(writer.log.read_text())) == 1
    rebuilt = json.loads(manifest.read_text())["shards"]
    assert sorted((s["file"], s["rows"], s["xxh3_128"]) for s in rebuilt) == sorted(
        (s["file"], s["rows"], s["xxh3_128"]) for s in listed)
    assert len(list((dataset / ".meta" / "damaged").glob("manifest.json.*"))) == 2
    assert _verify(data_dir).returncode == 0


def test_truncated_session_file_is_rebuilt_and_recording_goes_on(dataset, data_dir,
                                                                 writer_factory, endpoint):
    (path,) = (dataset / ".meta" / "sessions").glob("*.json")
    before = json.loads(path.read_text())
    _truncate(path)
    writer = writer_factory().start()
    result = run_record(ENV, endpoint, data_dir, "--episodes", "1", "--max-steps", "30",
                        "--seed", "4")
    assert result.returncode == 0, result.stderr
    assert writer.proc.poll() is None
    writer.stop()
    assert len(_damage_lines(writer.log.read_text())) == 1
    rebuilt = json.loads(path.read_text())
    fields = ("episode_id", "episode_index", "seed", "steps", "outcome")
    assert [{k: e[k] for k in fields} for e in rebuilt["episodes"]] == [
        {k: e[k] for k in fields} for e in before["episodes"]]
    summary = json.loads((dataset / ".meta" / "info.json").read_text())["summary"]
    ds = load(data_dir, ENV)
    assert summary["sessions"] == 2 and summary["episodes"] == 3 and summary["rows"] == len(ds)
    assert len(assert_exact_episodes(ds)) == 3


def test_folders_named_like_shards_in_incoming_are_moved_aside(dataset, data_dir,
                                                               writer_factory, endpoint):
    names = ["0123456789abcdef0123456789abcdef-0001.arrow", "junk.arrow.tmp"]
    for name in names:
        (dataset / ".incoming" / name).mkdir()
    writer = writer_factory().start()
    assert run_record(ENV, endpoint, data_dir, "--episodes", "1", "--max-steps", "20",
                      "--seed", "5").returncode == 0
    writer.stop()
    assert len(_damage_lines(writer.log.read_text())) == 1  # the shard-like one; .tmp skipped
    assert not (dataset / ".incoming" / names[0]).exists()
    assert len(assert_exact_episodes(load(data_dir, ENV))) == 3
