"""The benchmark scripts keep working: each runs its `--quick` mode (a few seconds, real envs,
a real writer process) and prints its table. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import ROOT


@pytest.mark.parametrize(("script", "header"), [
    ("bench_loop.py", "| env @fps | variant | work p50 ms |"),
    ("bench_memory.py", "| process, memory | start MiB |"),
    ("bench_size.py", "| env | codec | frames |"),
])
def test_quick_mode_prints_its_table(script, header, tmp_path):
    plot = ["--plot", str(tmp_path / "plot.png")] if script != "bench_size.py" else []
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--quick",
                             "--json", str(tmp_path / "out.json"), *plot],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert header in result.stdout, result.stdout
    assert (tmp_path / "out.json").stat().st_size > 0
    if plot:
        assert (tmp_path / "plot.png").stat().st_size > 0
