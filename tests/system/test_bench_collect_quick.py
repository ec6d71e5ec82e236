"""The headless-collection benchmark keeps working (a tiny run; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.processes import ROOT


def test_bench_collect_quick(tmp_path):
    out = tmp_path / "collect.json"
    result = subprocess.run(
        [sys.executable, "scripts/bench_collect.py", "--quick", "--platforms", "atari",
         "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "x bound" in result.stdout
    median = json.loads(out.read_text())["atari"]["median"]
    assert median["gymrec_fps"] > 0 and median["workers2_fps"] > 0 and median["bound_fps"] > 0
