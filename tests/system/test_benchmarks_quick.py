"""The benchmark scripts keep working: each runs its `--quick` mode (a few seconds, real envs,
a real writer process) and prints its table. No timing is asserted, so the scripts run at once
(one module-scoped start; each test reads its own script's output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

TABLES = {  # script -> the header of the table it prints
    "bench_loop.py": "| env @fps | variant | work p50 ms |",
    "bench_memory.py": "| process, memory | start MiB |",
    "bench_size.py": "| env | codec | frames |",
}
PLOTS = ("bench_loop.py", "bench_memory.py")  # the scripts told to draw their plot


def _command(script: str, out: Path) -> list[str]:
    cmd = [sys.executable, str(ROOT / "scripts" / script), "--quick", "--json",
           str(out / "out.json")]
    if script == "bench_collect.py":
        return [*cmd, "--platforms", "atari"]
    return [*cmd, "--plot", str(out / "plot.png")] if script in PLOTS else cmd


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Script -> (its finished run, its output folder), all scripts started at once."""
    folders = {s: tmp_path_factory.mktemp(s.removesuffix(".py"))
               for s in [*TABLES, "bench_collect.py"]}
    procs = {s: subprocess.Popen(_command(s, out), cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
             for s, out in folders.items()}
    done = {}
    try:
        for script, proc in procs.items():
            out, err = proc.communicate(timeout=240)
            done[script] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                            folders[script])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


@pytest.mark.parametrize(("script", "header"), TABLES.items())
def test_quick_mode_prints_its_table(runs, script, header):
    result, out = runs[script]
    assert result.returncode == 0, result.stderr[-3000:]
    assert header in result.stdout, result.stdout
    assert (out / "out.json").stat().st_size > 0
    if script in PLOTS:
        assert (out / "plot.png").stat().st_size > 0


def test_bench_collect_quick(runs):
    """The headless-collection benchmark (a tiny run)."""
    result, out = runs["bench_collect.py"]
    assert result.returncode == 0, result.stderr
    assert "x bound" in result.stdout
    median = json.loads((out / "out.json").read_text())["atari"]["median"]
    assert median["gymrec_fps"] > 0 and median["workers2_fps"] > 0 and median["bound_fps"] > 0
    assert median["writer_encodes_fps"] > 0
