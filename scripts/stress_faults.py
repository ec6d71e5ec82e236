"""Stress the delivery guarantees: headless recordings (`gymrec-record --agent random
--headless`, real processes) into a writer that is SIGKILLed at random moments, then an audit of
what is on disk.

    python scripts/stress_faults.py                     # 20 kills over 4 seeds, ~3 minutes
    python scripts/stress_faults.py --kills 3 --seeds 1 # the quick check the test suite runs

Each seed is one recording: one session per worker of the recorder (`--workers`, one per core
by default), all with the seed as their base seed. The writer is killed at a random moment: mostly
between 0.05 and 0.8 s after acknowledgements resumed, sometimes (1 in 5) within 0.5 s of the
restarted writer answering, i.e. during its recovery or the recorder's resend. A small resend
buffer (--buffer-mb) keeps the recorder close behind the writer, so every kill lands in a flow.

Measured per kill: the writer's down time (SIGKILL until a new writer answers a probe) and the
time from a restarted writer answering until acknowledgements resume, read from the disk: the
writer acknowledges a row right after its fsync, so the first complete batch of the new writer's
open shard (or a new sealed shard) marks the moment acks resume, give or take milliseconds.

The audit: frames sent = durable = step rows on disk per recording (its sessions together); no
duplicate and no missing (session, seq); every episode in the session files with the outcome its
final row says; the card's counts; `datasets.load_dataset` reads every row; `gymrec-replay`
passes. Exit code 0 when all of it holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_common import terminate  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: E402

ENV = "BreakoutNoFrameskip-v4"


@dataclass
class Kill:
    seed: int
    down_s: float  # SIGKILL until the next writer answered a probe
    resume_s: float | None  # answered until the first new durable batch (None: killed before)
    early: bool  # killed within 0.5 s of the writer answering (no wait for the resume)


@dataclass
class Recording:
    seed: int
    returncode: int
    sent: int
    durable: int
    dropped: int
    output: str = field(repr=False)
    sessions: list[str] = field(default_factory=list)  # one per worker


# -- pure helpers -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (f"n={len(values)}  min {min(values):.2f}  p50 {percentile(values, 50):.2f}  "
            f"p90 {percentile(values, 90):.2f}  p99 {percentile(values, 99):.2f}  "
            f"max {max(values):.2f} s")


def parse_summary(output: str) -> tuple[int, int, int]:
    """(sent, durable, dropped) from gymrec-record's last line; -1 each when it is missing."""
    match = re.search(r"frames sent: (\d+)\s+frames durable: (\d+)\s+gaps \(dropped frames\): "
                      r"(\d+)", output)
    return tuple(int(g) for g in match.groups()) if match else (-1, -1, -1)


def outcome_of(terminated: bool, truncated: bool) -> str:
    return "terminated" if terminated else "truncated" if truncated else "aborted"


def audit_rows(rows: list[dict], sessions: dict[str, dict],
               recordings: list[Recording]) -> list[str]:
    """Problems found comparing the rows (no images) with the session files and what each
    recorder said it sent (over all its sessions); [] when everything agrees."""
    problems = []
    by_session: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_session[row["session_id"]].append(row)
    owned = {sid for rec in recordings for sid in rec.sessions}
    for rec in recordings:
        steps = sum(1 for sid in rec.sessions for r in by_session.get(sid, ())
                    if not r["is_last"])
        if not rec.sessions:
            problems.append(f"seed {rec.seed}: no session file")
        elif not (rec.sent == rec.durable == steps and rec.dropped == 0):
            problems.append(f"seed {rec.seed} ({len(rec.sessions)} sessions): sent {rec.sent}, "
                            f"durable {rec.durable}, dropped {rec.dropped}, step rows on disk "
                            f"{steps}")
    for sid in sorted(set(by_session) | set(sessions) | owned):
        mine = by_session.get(sid, [])
        seqs = [r["seq"] for r in mine]
        duplicates = len(seqs) - len(set(seqs))
        missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
        if duplicates or missing:
            problems.append(f"session {sid}: {duplicates} duplicate and {len(missing)} missing "
                            f"seqs (first missing: {missing[:5]})")
        if sid not in owned:
            problems.append(f"session {sid}: rows of no recording of this run")
        finals = {(r["episode_index"], r["step"], outcome_of(r["terminated"], r["truncated"]))
                  for r in mine if r["is_last"]}
        state = sessions.get(sid)
        if state is None:
            problems.append(f"session {sid}: no session file")
            continue
        listed = {(e["episode_index"], e["steps"], e["outcome"]) for e in state["episodes"]}
        if listed != finals:
            problems.append(f"session {sid}: session file lists {len(listed)} episodes, the "
                            f"rows end {len(finals)}; differing: {sorted(listed ^ finals)[:4]}")
        if state.get("status") != "ended":
            problems.append(f"session {sid}: status {state.get('status')!r}, not 'ended'")
    return problems


# -- processes ------------------------------------------------------------------------------


class WriterLife:
    """One `gymrec-writer` process (the real one: python -m writer.cli, signalled directly)."""

    def __init__(self, endpoint: str, data_dir: Path, log: Path):
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "writer.cli", "--endpoint", endpoint, "--data-dir",
                 str(data_dir), "-v"], cwd=ROOT, stdout=out, stderr=out,
                stdin=subprocess.DEVNULL)
        self.log = log

    def wait_answering(self, endpoint: str, timeout: float = 120) -> float:
        """Seconds until it answers a probe (raises SystemExit if it dies or never does)."""
        from recorder.delivery.link import probe_writer

        started = time.monotonic()
        while probe_writer(endpoint, 0.1) is None:
            if self.proc.poll() is not None or time.monotonic() - started > timeout:
                raise SystemExit(f"the writer did not start:\n{self.log.read_text()[-3000:]}")
        return time.monotonic() - started

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        terminate(self.proc)


def durable_marker(root: Path) -> dict[str, int]:
    """Complete batches per shard file: the open shards in .incoming and the sealed ones (-1).
    Grows when the writer makes rows durable, which it acknowledges at once."""
    from writer.store.shards import read_complete_batches

    marker = {p.name: -1 for p in (root / "data").glob("*.arrow")}
    for path in (root / ".incoming").glob("*.arrow"):
        if path.is_file() and path.name not in marker:
            marker[path.name] = len(read_complete_batches(path)[1])
    return marker


def grew(before: dict[str, int], now: dict[str, int]) -> bool:
    """New durable rows between two markers: a shard with more complete batches, or newly
    sealed."""
    return any(n == -1 and before.get(name) != -1 or n > before.get(name, 0)
               for name, n in now.items())


def wait_resumed(root: Path, recorder: subprocess.Popen, timeout: float = 60) -> float | None:
    """Seconds until new rows are durable (None if the recorder ended or nothing came)."""
    start = time.monotonic()
    before = durable_marker(root)
    while time.monotonic() - start < timeout:
        if grew(before, durable_marker(root)):
            return time.monotonic() - start
        if recorder.poll() is not None:
            return None
        time.sleep(0.005)
    return None


# -- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, console: Console) -> int:
    rng = random.Random(args.rng)
    work = Path(args.data_dir or tempfile.mkdtemp(prefix="gymrec-stress-"))
    data_dir, logs = work / "data", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    root = data_dir / ENV
    endpoint = _free_endpoint()
    kills: list[Kill] = []
    recordings: list[Recording] = []
    lives = 0

    def new_writer() -> WriterLife:
        nonlocal lives
        lives += 1
        return WriterLife(endpoint, data_dir, logs / f"writer{lives:03d}.log")

    writer = new_writer()
    writer.wait_answering(endpoint)
    seeds = list(range(1, args.seeds + 1))
    per_seed = math.ceil(args.kills / len(seeds))
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                        console=console, transient=False)
    recorder: subprocess.Popen | None = None
    try:
        with progress:
            task = progress.add_task("writer kills", total=args.kills, detail="")
            while seeds:
                seed = seeds.pop(0)
                out_path = logs / f"recorder-seed{seed}.log"
                with open(out_path, "wb") as out:
                    recorder = subprocess.Popen(
                        [sys.executable, "-m", "recorder.cli", ENV, "--agent", "random",
                         "--headless", "--episodes", str(args.episodes), "--max-steps",
                         str(args.max_steps), "--seed", str(seed), "--endpoint", endpoint,
                         "--data-dir", str(data_dir), "--buffer-mb", str(args.buffer_mb),
                         "--stall-timeout", "120", "--drain-timeout", "300",
                         "--encode-in", args.encode_in],
                        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                mine = 0
                wait_resumed(root, recorder)  # the recording is under way
                early = False
                while mine < per_seed and len(kills) < args.kills and recorder.poll() is None:
                    time.sleep(rng.uniform(0.0, 0.5) if early else rng.uniform(0.05, 0.8))
                    if recorder.poll() is not None:
                        break
                    writer.kill()
                    killed_at = time.monotonic()
                    mine += 1
                    writer = new_writer()
                    writer.wait_answering(endpoint)
                    down = time.monotonic() - killed_at
                    # 1 in 5: do not wait for the resume, kill again within 0.5 s (recovery, resend)
                    resume = None if rng.random() < 0.2 else wait_resumed(root, recorder)
                    kills.append(Kill(seed, down, resume, early=early))
                    early = resume is None
                    progress.update(task, advance=1, detail=(
                        f"seed {seed}  down {down:.2f} s  "
                        f"resumed {'-' if resume is None else f'{resume:.2f} s'}"))
                left = args.kills - len(kills)
                if left > 0 and not seeds and seed < args.seeds + 3 * args.kills:
                    # The recordings ended before the kills did (a short one can end before
                    # its first kill's random moment): another, up to 3 for each kill wanted.
                    seeds.append(seed + 1)
                progress.update(task, detail=f"seed {seed}: recording ends")
                try:
                    recorder.wait(600)
                except subprocess.TimeoutExpired:
                    recorder.kill()
                    recorder.wait()
                output = out_path.read_text(errors="replace")
                sent, durable, dropped = parse_summary(output)
                recordings.append(Recording(seed, recorder.returncode, sent, durable, dropped,
                                            output, sessions=_sessions_of(root, seed)))
    finally:  # nothing of ours outlives the run, also after an error
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
            recorder.wait()
        writer.stop()
    return _report(args, console, root, work, kills, recordings)


def _free_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _sessions_of(root: Path, seed: int) -> list[str]:
    """The session ids of the recording of `seed` (the session files with that base seed: one
    per worker)."""
    found = []
    for path in sorted((root / ".meta" / "sessions").glob("*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (state.get("start") or {}).get("base_seed") == seed:
            found.append(path.stem)
    return found


def _read_rows(root: Path) -> list[dict]:
    import pyarrow as pa

    rows = []
    for path in sorted((root / "data").glob("*.arrow")):
        table = pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
        rows.extend(table.drop_columns(["image"]).to_pylist())
    return rows


def _report(args, console: Console, root: Path, work: Path, kills: list[Kill],
            recordings: list[Recording]) -> int:
    problems = [f"seed {r.seed}: gymrec-record exited {r.returncode}: "
                f"{r.output.strip().splitlines()[-1:] or ''}"
                for r in recordings if r.returncode != 0]
    if len(kills) < args.kills:
        problems.append(f"only {len(kills)} of {args.kills} kills happened")
    rows = _read_rows(root)
    sessions = {}
    for path in (root / ".meta" / "sessions").glob("*.json"):
        sessions[path.stem] = json.loads(path.read_text())
    problems += audit_rows(rows, sessions, recordings)
    summary = json.loads((root / ".meta" / "info.json").read_text())["summary"]
    episodes = sum(1 for r in rows if r["is_last"])
    if (summary["rows"], summary["episodes"]) != (len(rows), episodes):
        problems.append(f"info.json says {summary['rows']} rows, {summary['episodes']} "
                        f"episodes; the shards hold {len(rows)}, {episodes}")
    import datasets

    loaded = len(datasets.load_dataset(str(root), split="train"))
    if loaded != len(rows):
        problems.append(f"load_dataset read {loaded} rows of {len(rows)}")
    replay = subprocess.run([sys.executable, "-m", "recorder.replay.cli", ENV, "--data-dir",
                             str(root.parent)], cwd=ROOT, capture_output=True, text=True,
                            timeout=1800)
    verdict = next((ln for ln in replay.stdout.splitlines() if ln.startswith("verdict:")),
                   replay.stderr.strip()[-300:])
    if replay.returncode != 0:
        problems.append(f"gymrec-replay exited {replay.returncode}: {verdict}")
    resumes = [k.resume_s for k in kills if k.resume_s is not None]
    downs = [k.down_s for k in kills]
    sent = sum(r.sent for r in recordings)
    console.print(f"data: {work}")
    console.print(f"kills: {len(kills)} over seeds "
                  f"{sorted({k.seed for k in kills})}; recordings: {len(recordings)}, sessions: "
                  f"{sum(len(r.sessions) for r in recordings)}")
    console.print(f"frames sent {sent}, durable {sum(r.durable for r in recordings)}, "
                  f"rows on disk {len(rows)} ({episodes} episodes), load_dataset {loaded}")
    console.print(f"writer down (SIGKILL → answering): {spread(downs)}")
    console.print(f"answering → acks resume:          {spread(resumes)}")
    console.print(f"replay: {verdict}")
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}", markup=True)
    console.print("audit: " + ("PASS" if not problems else f"FAIL ({len(problems)} problems)"))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "kills": [asdict(k) for k in kills], "sent": sent, "rows": len(rows),
            "episodes": episodes, "problems": problems, "replay": verdict,
            "down_p50": percentile(downs, 50) if downs else None,
            "resume_p99": percentile(resumes, 99) if resumes else None}, indent=1))
    return 0 if not problems else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="writer SIGKILLs in all")
    parser.add_argument("--seeds", type=int, default=4, help="recordings (one per seed)")
    parser.add_argument("--episodes", type=int, default=30, help="episodes per recording")
    parser.add_argument("--max-steps", type=int, default=200, help="steps per episode at most")
    parser.add_argument("--buffer-mb", type=int, default=2,
                        help="the recorder's resend buffer (small: it stays close behind; 2 MB "
                             "holds ~20 raw Breakout frames in a ring, ~280 of its JPEGs)")
    parser.add_argument("--encode-in", default="auto", choices=["auto", "recorder", "writer"],
                        help="where frames become images (gymrec-record --encode-in)")
    parser.add_argument("--rng", type=int, default=11, help="seed of the kill moments")
    parser.add_argument("--data-dir", default=None, help="where to record (default: a new "
                        "temporary folder, kept for a look)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    sys.exit(run(args, console))


if __name__ == "__main__":
    main()
