"""What recording the env's info costs the game loop, per platform: the time `Episode` spends per
step on the info (the platform's typed values + the rest as JSON) next to `env.step` itself and
the frame budget at the env's own rate; and the writer-side raw-frame hash (xxh3-128), which is
not in the game loop. Medians and p99 over `--steps` random steps of the real env.

    uv run python scripts/bench_info.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ENVS, markdown_table  # noqa: E402

from recorder.envs import frame_of, info_reader, make_env, native_fps, resolve_env  # noqa: E402
from recorder.info import info_json  # noqa: E402
from shared.frame_hash import frame_hash  # noqa: E402


def bench(platform: str, steps: int) -> dict:
    env = make_env(resolve_env(ENVS[platform]))
    try:
        env.action_space.seed(1)
        env.reset(seed=1)
        read = info_reader(env)
        step_us, info_us, hash_us = [], [], []
        for _ in range(steps):
            started = time.perf_counter()
            observation, _, terminated, truncated, info = env.step(env.action_space.sample())
            stepped = time.perf_counter()
            typed = read(info)
            info_json(info, typed)
            done = time.perf_counter()
            frame = frame_of(observation, env)
            hashing = time.perf_counter()
            frame_hash(frame)
            hash_us.append((time.perf_counter() - hashing) * 1e6)
            step_us.append((stepped - started) * 1e6)
            info_us.append((done - stepped) * 1e6)
            if terminated or truncated:
                env.reset()
        fps = native_fps(env)
    finally:
        env.close()
    budget_us = 1e6 / fps

    def stats(values: list[float]) -> tuple[float, float]:
        return float(np.median(values)), float(np.percentile(values, 99))

    return {"env_id": ENVS[platform], "fps": fps, "budget_us": budget_us,
            "step": stats(step_us), "info": stats(info_us), "hash": stats(hash_us),
            "columns": len(typed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    rows = []
    for platform in ("atari", "retro", "vizdoom"):
        r = bench(platform, args.steps)
        rows.append([r["env_id"], f"{r['fps']:g}", str(r["columns"]),
                     f"{r['step'][0]:.0f} / {r['step'][1]:.0f}",
                     f"{r['info'][0]:.1f} / {r['info'][1]:.1f}",
                     f"{100 * r['info'][0] / r['budget_us']:.3f} %",
                     f"{r['hash'][0]:.1f} / {r['hash'][1]:.1f}"])
    print(f"Per step, µs, median / p99 over {args.steps} random steps\n")
    print(markdown_table(["env", "fps", "typed info columns", "env.step",
                          "info in the loop", "info, % of frame budget (median)",
                          "frame hash (writer)"], rows))


if __name__ == "__main__":
    main()
