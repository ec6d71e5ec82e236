"""Replay benchmark: headless `gymrec-replay` speed against bare env stepping, per platform.

For each platform: record a dataset with the random agent (gymrec-record, its own writer), then
alternate, `--repeats` times, (1) bare: reset with each episode's seed and step its recorded
actions, nothing else; (2) replay as by default, frames compared by their xxh3-128 hashes
(inline); (3) replay with `--check image`: hashes, and every frame JPEG-encoded and compared with
the stored bytes in the helper process. Replay runs the real code path (shards read batch by
batch, flags checked) on an env already made and a helper already started (one untimed warm-up
run each), so every side times steady stepping. Medians are printed.

    uv run python scripts/bench_replay.py [--steps 3000] [--repeats 5] [--platform atari ...]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recorder.replay.checks import frame_checks  # noqa: E402
from recorder.replay.replayer import (  # noqa: E402
    PASS,
    EnvCache,
    env_action,
    episodes_of,
    plan_sessions,
    replay_session,
    rows_of,
)
from recorder.replay.sources.local import LocalSource  # noqa: E402
from shared.config import dataset_dir  # noqa: E402

# platform → (env id, episodes, max steps per episode)
PLATFORMS = {"atari": ("BreakoutNoFrameskip-v4", 8, 500),
             "retro": ("Airstriker-Genesis-v0", 3, 500),
             "vizdoom": ("VizdoomBasic-v1", 12, 300)}


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def record(env_id: str, episodes: int, max_steps: int, data_dir: Path) -> Path:
    cmd = [sys.executable, "-m", "recorder.cli", env_id, "--agent", "random", "--headless",
           "--episodes", str(episodes), "--max-steps", str(max_steps), "--seed", "1",
           "--workers", "1", "--data-dir", str(data_dir), "--endpoint", free_endpoint()]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=600)
    return dataset_dir(data_dir, env_id)


def recorded_episodes(source: LocalSource, session_id: str) -> list[tuple[int, list]]:
    batches = (b for s in source.shards(session_id) for b in source.batches(s))
    return [(rows[0].seed, [r.action for r in rows if not r.is_last])
            for _, group in episodes_of(rows_of(batches)) for rows in [list(group)]]


def bench(platform: str, repeats: int, data_dir: Path) -> dict:
    env_id, episodes, max_steps = PLATFORMS[platform]
    source = LocalSource(record(env_id, episodes, max_steps, data_dir))
    (plan,) = plan_sessions(source.sessions())
    recorded = recorded_episodes(source, plan.session_id)
    steps = sum(len(actions) for _, actions in recorded)
    envs = EnvCache()
    env = envs.get(plan.recorded.choice)
    recorded = [(seed, [env_action(a, env.action_space) for a in actions])
                for seed, actions in recorded]
    rates: dict[str, list[float]] = {"bare": [], "hash": [], "hash+image": []}
    checkers = {"hash": frame_checks(plan.recorded.compare, False),
                "hash+image": frame_checks(plan.recorded.compare, True)}
    try:
        for repeat in range(-1, repeats):  # -1: warm-up, not timed
            started = time.perf_counter()
            for seed, actions in recorded:
                env.reset(seed=seed)
                for action in actions:
                    env.step(action)
            if repeat >= 0:
                rates["bare"].append(steps / (time.perf_counter() - started))
            for name, checks in checkers.items():
                started = time.perf_counter()
                results = list(replay_session(plan, source, envs, checks,
                                              check_images=name == "hash+image"))
                if repeat >= 0:
                    rates[name].append(steps / (time.perf_counter() - started))
                if any(r.status != PASS for r in results):
                    raise SystemExit(f"{env_id}: replay did not pass: {results}")
    finally:
        for checks in checkers.values():
            checks.close()
        envs.close()
    medians = {k: statistics.median(v) for k, v in rates.items()}
    # Each repeat's ratio to the bare run just before it: the load changes between repeats.
    ratios = {k: [r / b for r, b in zip(rates[k], rates["bare"], strict=True)]
              for k in ("hash", "hash+image")}
    return {"env_id": env_id, "steps": steps, **medians,
            "ranges": {k: (min(v), max(v)) for k, v in rates.items()},
            "ratios": {k: (statistics.median(v), min(v), max(v)) for k, v in ratios.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gymrec-bench-replay-") as tmp:
        for platform in args.platform or list(PLATFORMS):
            rows.append(bench(platform, args.repeats, Path(tmp)))
            print(f"... {platform} done", file=sys.stderr)
    print(f"{'env':<24}{'steps':>7}{'bare/s':>9}{'hash/s':>10}{'ratio':>7}"
          f"{'hash+image/s':>14}{'ratio':>7}")
    for r in rows:
        hashed, imaged = r["hash"], r["hash+image"]
        print(f"{r['env_id']:<24}{r['steps']:>7}{r['bare']:>9.0f}{hashed:>10.0f}"
              f"{hashed / r['bare']:>7.2f}{imaged:>14.0f}{imaged / r['bare']:>7.2f}")
    print(f"medians of {args.repeats} runs each; min-max per column:")
    for r in rows:
        spans = "  ".join(f"{k} {lo:.0f}-{hi:.0f}" for k, (lo, hi) in r["ranges"].items())
        print(f"  {r['env_id']}: {spans}")
    print("ratio to the bare run of the same repeat, median (min-max):")
    for r in rows:
        spans = "  ".join(f"{k} {m:.2f} ({lo:.2f}-{hi:.2f})"
                          for k, (m, lo, hi) in r["ratios"].items())
        print(f"  {r['env_id']}: {spans}")


if __name__ == "__main__":
    main()
