"""Episode starts: what a reset costs per platform, and what cheap starts do end to end.

Part 1, in this process, per platform (median of many): a seeded reset, an unseeded one, the
platform's snapshot alone, a cheap start (`recorder.seeds.start_episode`: the snapshot, then an
unseeded reset; platforms without snapshots reset with the seed) and replay's restart from that
snapshot (`restart_episode`).

Part 2: `gymrec-record BreakoutNoFrameskip-v4 --agent random --headless --episodes 64 --seed 1`
into a running writer, with cheap starts (as shipped) and with every episode reset with its
seed (a sitecustomize module, on PYTHONPATH for the recorder and its spawned workers, makes
Atari.start_snapshot return None: the build before cheap starts), alternated over repeats;
episodes/s and durable frames/s from the recorder's summary, and the CPU time of the recorder
and its workers per frame (what the load of others on a shared machine moves least).

    uv run python scripts/bench_reset.py                # both parts
    uv run python scripts/bench_reset.py --quick        # a smoke run (~1 min here)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import ENVS, ROOT, Writer, fmt_spread, markdown_table, spread

SEEDED_ONLY = '''
import os
if os.environ.get("GYMREC_BENCH_SEEDED_RESETS") == "1":
    from recorder.envs.atari import Atari
    Atari.start_snapshot = lambda self, env: None  # every episode reset with its seed
'''


def _median_ms(action, n: int) -> float:
    times = []
    for i in range(n):
        started = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def reset_costs(platform: str, n: int) -> dict[str, float]:
    """Median milliseconds of each way to start an episode of the platform's benchmark env."""
    from recorder.envs import make_env, resolve_env
    from recorder.seeds import restart_episode, start_episode, start_snapshot

    env = make_env(resolve_env(ENVS[platform]))
    try:
        env.reset(seed=0)
        for _ in range(50):  # out of the power-on state (VizdoomBasic may end meanwhile)
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        seeded_n = max(5, n // 5) if platform == "atari" else n  # ~0.1 s each on ALE
        snapshot = start_snapshot(env)
        return {
            "seeded": _median_ms(lambda i: env.reset(seed=i), seeded_n),
            "unseeded": _median_ms(lambda i: env.reset(), n),
            "snapshot": _median_ms(lambda i: start_snapshot(env), n),
            "cheap start": _median_ms(lambda i: start_episode(env, i), n),
            "replay restart": _median_ms(lambda i: restart_episode(env, i, snapshot), n),
            "snapshot bytes": float(len(snapshot) if snapshot is not None else 0),
        }
    finally:
        env.close()


_SUMMARY = re.compile(r"episodes: (\d+)\s+frames sent: (\d+)\s+frames durable: (\d+)")
_ELAPSED = re.compile(r"recorded in ([\d.,]+) s: ([\d.,]+) frames/s durable")


def record_run(writer: Writer, seeded: bool, workers: str, patch_dir: Path,
               episodes: list[str]) -> dict[str, float]:
    """One recording of random Breakout episodes (`episodes`: the flags saying how many); its
    episodes/s and durable frames/s."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(patch_dir), str(ROOT)]),
           "GYMREC_BENCH_SEEDED_RESETS": "1" if seeded else "0"}
    cmd = [sys.executable, "-m", "recorder.cli", "BreakoutNoFrameskip-v4", "--agent", "random",
           "--headless", *episodes, "--seed", "1", "--endpoint", writer.endpoint,
           "--data-dir", str(writer.data_dir)]
    if workers != "default":
        cmd += ["--workers", workers]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the recorder and its workers
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts, elapsed = _SUMMARY.search(result.stdout), _ELAPSED.search(result.stdout)
    if result.returncode != 0 or counts is None or elapsed is None:
        raise SystemExit(f"recording failed ({result.returncode}):\n{result.stdout}\n"
                         f"{result.stderr}")
    seconds = float(elapsed.group(1).replace(",", ""))
    return {"episodes/s": int(counts.group(1)) / seconds,
            "frames/s": float(elapsed.group(2).replace(",", "")),
            "frames": int(counts.group(3)), "cpu ms/frame": cpu * 1000 / int(counts.group(3))}


def end_to_end(repeats: int, worker_settings: list[str], episodes: list[str]
               ) -> list[list[object]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="gymrec-bench-reset-") as tmp:
        patch_dir = Path(tmp) / "patch"
        patch_dir.mkdir()
        (patch_dir / "sitecustomize.py").write_text(SEEDED_ONLY)
        with Writer(Path(tmp) / "data") as writer:
            for workers in worker_settings:
                runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
                for _ in range(repeats):
                    for seeded in (True, False):  # alternated: load drifts hit both alike
                        runs[seeded].append(record_run(writer, seeded, workers, patch_dir,
                                                      episodes))
                for seeded in (True, False):
                    eps = spread([r["episodes/s"] for r in runs[seeded]])
                    fps = spread([r["frames/s"] for r in runs[seeded]])
                    cpu = spread([r["cpu ms/frame"] for r in runs[seeded]])
                    rows.append([workers, "seeded resets (before)" if seeded
                                 else "cheap starts (now)", fmt_spread(eps, 1),
                                 fmt_spread(fps, 0), fmt_spread(cpu, 3),
                                 runs[seeded][0]["frames"]])
                ratio = (statistics.median(r["frames/s"] for r in runs[False])
                         / statistics.median(r["frames/s"] for r in runs[True]))
                cpu_ratio = (statistics.median(r["cpu ms/frame"] for r in runs[False])
                             / statistics.median(r["cpu ms/frame"] for r in runs[True]))
                rows.append([workers, "now / before", "", f"{ratio:.2f}×", f"{cpu_ratio:.2f}×",
                             ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer resets and repeats")
    parser.add_argument("--resets", type=int, default=100, help="resets per kind (median)")
    parser.add_argument("--repeats", type=int, default=3, help="recordings per variant")
    parser.add_argument("--skip-record", action="store_true", help="part 1 only")
    parser.add_argument("--workers", default="1,default", help="--workers values to record with")
    parser.add_argument("--json", type=Path, default=None, help="write the tables here")
    args = parser.parse_args()
    n, repeats = (10, 1) if args.quick else (args.resets, args.repeats)
    # --quick: a smoke run (4 short episodes, one worker), not a measurement
    episodes, workers = ((["--episodes", "4", "--max-steps", "100"], ["1"]) if args.quick
                         else (["--episodes", "64"], args.workers.split(",")))
    print(f"reset costs, median of {n} (ALE seeded: of {max(5, n // 5)}), ms")
    rows = []
    for platform in ENVS:
        costs = reset_costs(platform, n)
        rows.append([ENVS[platform], *(f"{costs[k]:.2f}" for k in
                                       ("seeded", "unseeded", "snapshot", "cheap start",
                                        "replay restart")),
                     int(costs["snapshot bytes"]) or "none"])
        print(rows[-1], flush=True)
    print(markdown_table(["env", "seeded reset", "unseeded reset", "snapshot alone",
                          "episode start now", "replay restart", "start state bytes"], rows))
    table: list[list[object]] = []
    if not args.skip_record:
        print(f"\ngymrec-record BreakoutNoFrameskip-v4 --agent random --headless "
              f"{' '.join(episodes)} --seed 1, {repeats} run(s) per variant, alternated",
              flush=True)
        table = end_to_end(repeats, workers, episodes)
        print(markdown_table(["--workers", "episode starts", "episodes/s", "frames/s durable",
                              "recorder CPU ms/frame", "frames"], table))
    if args.json is not None:
        args.json.write_text(json.dumps({"resets_ms": rows, "end_to_end": table}, indent=1))


if __name__ == "__main__":
    main()
