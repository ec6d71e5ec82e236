"""Headless collection benchmark: where does a frame's time go, per platform?

For each platform, in one run: the bare env step time and the one-core JPEG encode time, each
measured alone; the seed's approach (encode every frame inside the env loop, one process); and
gymrec end to end (recorder process + writer process, frames durable per second). The two-core
work bound is 2 / (step + encode): whatever gymrec loses beyond it is transport, copies, Arrow
and fsync overhead.

    uv run python scripts/bench_collect.py [--frames 6000] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recorder.envs import frame_of, make_env, resolve_env  # noqa: E402
from recorder.link import probe_writer  # noqa: E402
from recorder.loop import RecordSettings, record_worker  # noqa: E402

ENVS = {"atari": "BreakoutNoFrameskip-v4", "retro": "Airstriker-Genesis-v0",
        "vizdoom": "VizdoomBasic-v1"}


def bare_step_seconds(env_id: str, frames: int) -> tuple[float, list[np.ndarray]]:
    env = make_env(resolve_env(env_id))
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    kept = []
    started = time.perf_counter()
    for i in range(frames):
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
        if i % 50 == 0:
            kept.append(frame_of(obs, env))
    elapsed = time.perf_counter() - started
    env.close()
    return elapsed / frames, kept


def encode_seconds(frames: list[np.ndarray], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            simplejpeg.encode_jpeg(f, 95, "RGB", "444")
    return (time.perf_counter() - started) / (repeat * len(frames))


def seed_style_fps(env_id: str, frames: int) -> float:
    """The seed's approach: encode each frame inside the loop and keep it in memory."""
    env = make_env(resolve_env(env_id))
    env.action_space.seed(1)
    obs, _ = env.reset(seed=1)
    kept = []
    started = time.perf_counter()
    for _ in range(frames):
        kept.append(simplejpeg.encode_jpeg(frame_of(obs, env), 95, "RGB", "444"))
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    elapsed = time.perf_counter() - started
    env.close()
    return frames / elapsed


def gymrec_fps(env_id: str, frames: int, workdir: Path) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    data_dir = workdir / f"data-{env_id}"
    writer = subprocess.Popen([sys.executable, "-m", "writer.cli", "--endpoint", endpoint,
                               "--data-dir", str(data_dir)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while probe_writer(endpoint, 0.3) is None:
            time.sleep(0.1)
        settings = RecordSettings(
            choice=resolve_env(env_id), endpoint=endpoint, data_dir=data_dir, episodes=1,
            max_steps=frames, base_seed=3, agent="random", codec="jpeg", quality=95, fps=60,
            buffer_bytes=256 * 2**20, drain_timeout=120, collector="bench")
        result = _record_until(settings, frames)
    finally:
        writer.terminate()
        writer.wait(30)
    return result


def _record_until(settings: RecordSettings, frames: int) -> float:
    """Episodes end early in some games: keep recording episodes until `frames` are durable."""
    durable = elapsed = 0.0
    episode_budget = frames
    while durable < frames:
        s = RecordSettings(**{**settings.__dict__, "max_steps": episode_budget, "episodes": 50})
        progress = record_worker(s, 0, lambda p: None)
        durable += progress.steps_durable
        elapsed += progress.elapsed_s
        break
    return durable / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small run (used by the tests)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--platforms", default="atari,retro,vizdoom")
    args = parser.parse_args()
    frames = 300 if args.quick else args.frames
    repeats = 1 if args.quick else args.repeats
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for platform in args.platforms.split(","):
            env_id = ENVS[platform]
            runs = []
            for _ in range(repeats):
                step, sample = bare_step_seconds(env_id, frames)
                encode = encode_seconds(sample, max(1, 1000 // len(sample)))
                seed = seed_style_fps(env_id, frames)
                ours = gymrec_fps(env_id, frames, Path(tmp))
                bound = 2 / (step + encode)
                runs.append({"step_ms": step * 1e3, "encode_ms": encode * 1e3,
                             "bound_fps": bound, "seed_fps": seed, "gymrec_fps": ours,
                             "vs_bound": ours / bound, "vs_seed": ours / seed})
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            spread = {k: (min(r[k] for r in runs), max(r[k] for r in runs)) for k in runs[0]}
            results[platform] = {"env_id": env_id, "median": med, "range": spread,
                                 "runs": runs}
            print(f"{env_id:24s} step {med['step_ms']:.3f} ms  encode {med['encode_ms']:.3f} ms"
                  f"  bound {med['bound_fps']:,.0f}/s  seed {med['seed_fps']:,.0f}/s  "
                  f"gymrec {med['gymrec_fps']:,.0f}/s  = {med['vs_bound']:.2f}x bound, "
                  f"{med['vs_seed']:.2f}x seed", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
