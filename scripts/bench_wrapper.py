"""How fast `record(env)` records from a user's own loop, against `gymrec-record --agent random
--headless` on the same env, and a vector env of N against N times one env; all into one
running writer, everything durable before the clock stops.

    uv run python scripts/bench_wrapper.py [--env BreakoutNoFrameskip-v4] [--steps 6000]

Each mode plays `--steps` steps of random actions (episodes cut at `--max-steps`, seeded
resets as the CLI does them) and reports steps per second durable; the modes run in one
process, one after the other, `--repeats` times, and the median is shown.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym  # noqa: E402  (after bench_common put the project on the path)
from bench_common import ROOT, Writer

from recorder import record  # noqa: E402
from recorder.envs import resolve_env  # noqa: E402


def cli(writer: Writer, env_id: str, steps: int, max_steps: int) -> float:
    episodes = max(1, steps // max_steps)
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", env_id, "--agent", "random", "--headless",
         "--endpoint", writer.endpoint, "--data-dir", str(writer.data_dir), "--episodes",
         str(episodes), "--max-steps", str(max_steps), "--seed", "1"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([\d,]+) frames/s durable", out).group(1).replace(",", ""))


def wrapped(writer: Writer, env_id: str, steps: int, max_steps: int) -> float:
    env = record(gym.make(env_id, max_episode_steps=max_steps), data_dir=writer.data_dir,
                 endpoint=writer.endpoint, agent="bench")
    env.action_space.seed(1)
    began = time.perf_counter()
    env.reset(seed=1)
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    env.close()
    assert env.recording.steps_durable == steps
    return steps / (time.perf_counter() - began)


def vector(writer: Writer, env_id: str, steps: int, max_steps: int, n: int, mode: str) -> float:
    envs = record(gym.make_vec(env_id, num_envs=n, vectorization_mode=mode,
                               max_episode_steps=max_steps),
                  data_dir=writer.data_dir, endpoint=writer.endpoint, agent="bench")
    envs.action_space.seed(1)
    began = time.perf_counter()
    envs.reset(seed=1)
    for _ in range(steps // n):
        envs.step(envs.action_space.sample())
    envs.close()
    return envs.recording.steps_durable / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--vector", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env_id = resolve_env(args.env).env_id
    modes = {
        "gymrec-record --agent random": lambda w: cli(w, env_id, args.steps, args.max_steps),
        "record(env), trivial policy": lambda w: wrapped(w, env_id, args.steps, args.max_steps),
        f"record(make_vec sync, {args.vector})":
            lambda w: vector(w, env_id, args.steps, args.max_steps, args.vector, "sync"),
        f"record(make_vec async, {args.vector})":
            lambda w: vector(w, env_id, args.steps, args.max_steps, args.vector, "async"),
    }
    results: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp, Writer(Path(tmp) / "data") as writer:
        for repeat in range(args.repeats):
            for name, run in modes.items():
                results[name].append(run(writer))
                print(f"  repeat {repeat + 1}: {name}: {results[name][-1]:,.0f} steps/s",
                      file=sys.stderr)
    base = statistics.median(results["gymrec-record --agent random"])
    print(f"\n{env_id}, {args.steps} steps per mode (episodes cut at {args.max_steps}), "
          f"median of {args.repeats}\n")
    print("| mode | steps/s durable | vs CLI |\n|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
