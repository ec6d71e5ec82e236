"""scripts/stress_faults.py keeps working: a quick run (3 writer SIGKILLs during a real headless
recording) whose audit must pass. The full run's figures are in docs/FAULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.processes import ROOT


def test_stress_script_quick_run_passes_its_audit(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stress_faults.py"), "--kills", "3", "--seeds",
         "1", "--episodes", "15", "--max-steps", "300", "--data-dir", str(tmp_path / "stress"),
         "--json", str(tmp_path / "figures.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert "audit: PASS" in result.stdout
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert len(figures["kills"]) == 3 and figures["problems"] == []
    assert figures["rows"] == figures["sent"] + figures["episodes"]
