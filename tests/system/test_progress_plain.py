"""Headless progress when stdout is not a terminal (a pipe, a log file): whole plain lines,
never a bar cut to the width rich guesses."""

from __future__ import annotations

import re

from tests.support.processes import run_record


def test_progress_into_a_pipe_is_plain_whole_lines(endpoint, data_dir):
    result = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "2",
                        "--max-steps", "30")
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and "\x1b[" not in result.stdout  # no cut, no escapes
    progress = [ln for ln in result.stdout.splitlines()
                if ln.startswith("BreakoutNoFrameskip-v4: episodes")]
    assert progress, result.stdout
    assert re.fullmatch(r"BreakoutNoFrameskip-v4: episodes 2/2  frames 60  [\d,]+/s  "
                        r"durable \d+  backlog \d+  gaps 0  \(\d+ s\)", progress[-1]), progress
