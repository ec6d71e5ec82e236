"""A rogue peer floods the writer during a real session: the writer stays up, its memory stays
put, the real session stays exact, and every message it had to refuse is counted."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.support.processes import ROOT
from tests.support.recorders import PacedRecorder, rows_table, session_state, steps_by_episode


def _rss_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def test_rogue_flood_during_a_real_session(writer_factory, endpoint, data_dir):
    writer = writer_factory().start()
    # Many episodes: it plays through the whole flood and is stopped (Ctrl-C) after it.
    rec = PacedRecorder(endpoint, data_dir, "--fps", "100", "--episodes", "1000", "--seed", "8")
    rec.wait_steps(100)
    rss_before = _rss_mb(writer.proc.pid)
    rogue = subprocess.run([sys.executable, "-m", "tests.support.rogue_peer", endpoint,
                            "--messages", "30000"],
                           cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert rogue.returncode == 0, rogue.stderr
    counts = json.loads(rogue.stdout.strip().splitlines()[-1])
    rss_after = _rss_mb(writer.proc.pid)
    final = rec.ctrl_c()  # still playing: the flood came while it recorded
    assert writer.proc.poll() is None  # still up
    assert rss_after - rss_before < 100, (rss_before, rss_after)
    assert final["steps_durable"] == final["steps"] and final["steps_dropped"] == 0
    steps = steps_by_episode(rows_table(data_dir))
    state = session_state(data_dir)
    assert len(steps) == len(state["episodes"]) and sum(len(s) for s in steps.values()) == \
        final["steps"]
    assert all(sorted(s) == list(range(len(s))) for s in steps.values())
    assert state["status"] == "ended" and state["end"]["reason"] == "interrupted"
    # The episode in progress at the Ctrl-C ends as aborted; one landing between two episodes
    # (the last one over, the next not begun: seen once in CI) leaves none in progress.
    assert state["episodes"][-1]["outcome"] in ("aborted", "terminated")
    assert writer.stop() == 0
    log = writer.log.read_text()
    last = log.splitlines()[-1]  # "stopped: ... N rejected, ... M sessions refused, ..."
    rejected = sum(int(re.search(rf"(\d+) {what}", last).group(1))
                   for what in ("rejected", "sessions refused"))
    assert rejected >= counts["invalid_at_least"] > 15000, (rejected, counts)
    print("FAULT-REPORT", json.dumps({
        "scenario": "rogue peer: 30k hostile messages", "rogue_sent": counts["sent"],
        "surely_invalid": counts["invalid_at_least"], "rejected": rejected,
        "writer_rss_growth_mb": round(rss_after - rss_before, 1), "real_steps": final["steps"],
        "real_durable": final["steps_durable"]}))
    assert not list(data_dir.parent.glob("escape*")) and not (ROOT / "escape").exists()
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.startswith(".")) == [
        "BreakoutNoFrameskip-v4", "Rogue-v0"]
