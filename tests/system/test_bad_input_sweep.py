"""Every command's bad input: one line on stderr naming the problem, the exit code the README
documents, no traceback, and the data already recorded untouched. Real processes, a real
writer (for the folder mix-up) and a recorded dataset in the data folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared.version import VERSION
from tests.support.hub_data import ENV_ID, record_session
from tests.support.processes import ROOT, free_endpoint

RECORD = [sys.executable, "-m", "recorder.cli"]
WRITER = [sys.executable, "-m", "writer.cli"]
REPLAY = [sys.executable, "-m", "recorder.replay.cli"]


def _digest(folder: Path) -> dict[str, str]:
    """Every file of the recorded datasets (what must never be lost or changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".writer")}


def _read_only_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through any mode bits; sysfs refuses even root
        return Path("/sys/kernel")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def _cases(tmp_path: Path, data: Path, endpoint: str) -> list[tuple[list[str], int, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    fresh = tmp_path / "never-made"
    headless = ["--agent", "random", "--headless", "--episodes", "1"]
    spare = free_endpoint()  # nothing may be started there: every case fails before

    def record(*args: str, data_dir: Path = fresh, at: str = spare) -> list[str]:
        return [*RECORD, *args, "--endpoint", at, "--data-dir", str(data_dir)]

    return [
        # gymrec-record: the data folder
        (record(ENV_ID, *headless, data_dir=a_file), 6, "is a file, not a folder"),
        (record(ENV_ID, *headless, data_dir=a_file / "sub"), 6, "Not a directory"),
        (record(ENV_ID, *headless, data_dir=Path("/proc/gymrec-data")), 6,
         "cannot use data folder /proc/gymrec-data"),
        (record(ENV_ID, *headless, data_dir=_read_only_dir(tmp_path)), 6,
         "cannot use data folder"),
        (record(ENV_ID, *headless, data_dir=tmp_path / "other", at=endpoint), 2,
         f"writes to {data}, not to --data-dir {tmp_path / 'other'}"),
        # gymrec-record: the endpoint
        (record(ENV_ID, *headless, at="127.0.0.1:5606"), 2, "is not of the form tcp://"),
        (record(ENV_ID, *headless, at="foo://bar"), 2, "is not of the form tcp://"),
        (record(ENV_ID, *headless, at="tcp://127.0.0.1:99999"), 2, "port 99999 is not in"),
        # gymrec-record: env, state, list, flags
        (record("Airstriker-Genesis", *headless, "--state", "NoSuchLevel"), 2,
         "no save state 'NoSuchLevel'"),
        (record(ENV_ID, *headless, "--state", "Level1"), 2, "--state"),
        ([*RECORD, "--list", "zzzz"], 2, "no env id contains 'zzzz'"),
        (record(ENV_ID, "--agent", "random", "--headless", "--episodes", "0"), 2,
         "Invalid value for '--episodes'"),
        (record(ENV_ID, "--keymap", str(tmp_path / "missing.toml")), 2, "missing.toml"),
        # gymrec-writer
        ([*WRITER, "--data-dir", str(a_file), "--endpoint", spare], 6, "cannot use data folder"),
        ([*WRITER, "--data-dir", str(fresh), "--endpoint", "foo://bar"], 2,
         "is not of the form tcp://"),
        ([*WRITER, "--data-dir", str(fresh), "--endpoint", "tcp://127.0.0.1:99999"], 2,
         "port 99999"),
        ([*WRITER, "--encoders", "0"], 2, "Invalid value for '--encoders'"),
        ([*WRITER, "push", "NoSuchGame-v9", "--data-dir", str(data)], 2, "no recording of"),
        ([*WRITER, "verify", "Breakout", "--data-dir", str(data)], 2,
         "did you mean BreakoutNoFrameskip-v4?"),
        ([*WRITER, "no-such-command"], 2, "No such command"),
        # gymrec-replay
        ([*REPLAY, "NoSuchGame-v9", "--data-dir", str(data)], 2, "unknown env id"),
        ([*REPLAY, "VizdoomBasic-v1", "--data-dir", str(data)], 2, "no"),
        ([*REPLAY, ENV_ID, "--data-dir", str(data), "--fps", "5"], 2,
         "--fps only applies with --render"),
        ([*REPLAY], 2, "Missing argument 'ENV_ID'"),
    ]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_commands_bad_input_is_one_line_and_its_exit_code(writer_factory, data_dir,
                                                                 endpoint, tmp_path):
    record_session(data_dir, episodes=2, steps=10, seed=41)
    before = _digest(data_dir)
    writer_factory().start()  # a writer serving data_dir at `endpoint`
    cases = _cases(tmp_path, data_dir.resolve(), endpoint)
    versions = [[*command, "--version"] for command in (RECORD, WRITER, REPLAY)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(_run, [cmd for cmd, _, _ in cases] + versions))
    for result in results[len(cases):]:  # and every command says its version
        assert result.returncode == 0 and VERSION in result.stdout and not result.stderr
    results = results[:len(cases)]
    problems = []
    for (cmd, code, words), result in zip(cases, results, strict=True):
        said = result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        if (result.returncode != code or "Traceback" in said or len(lines) != 1
                or not lines[0].startswith("gymrec-") or words not in lines[0]):
            problems.append(f"{' '.join(cmd[2:])}: exit {result.returncode} (want {code}), "
                            f"stderr {result.stderr[-600:]!r}")
    assert not problems, "\n".join(problems)
    assert _digest(data_dir) == before  # nothing recorded was lost or changed
    assert not (tmp_path / "never-made").exists()  # refused before any writer started


def test_writer_push_and_verify_resolve_ids_like_record(data_dir):
    record_session(data_dir, episodes=1, steps=5, seed=42, env_id="Airstriker-Genesis-v0")
    result = _run([*WRITER, "verify", "Airstriker-Genesis", "--data-dir", str(data_dir)])
    assert result.returncode == 0, result.stderr
    assert "1 shards, 6 rows: all match their checksums" in result.stdout
