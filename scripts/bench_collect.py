"""Headless collection benchmark: where does a frame's time go, per platform?

For each platform, in one run: the bare env step time (episodes reset with their seeds, and
reset without a seed after the first: the unseeded step) and the one-core JPEG encode time,
each measured alone; the seed's approach (encode every frame inside the env loop, one process);
and gymrec end to end (recorder processes + writer process, frames durable per second), with one
recorder and with `gymrec-record`'s default for headless agents (one per core). The two-core
work bound is 2 / (unseeded step + encode): whatever gymrec loses beyond it is resets,
transport, copies, Arrow and fsync overhead. The ceiling runs two processes that do nothing but
step and encode (each takes the next episode): what the bound's two cores give when both work
at once, measured, not assumed.

    uv run python scripts/bench_collect.py [--repeats 3] [--fast] [--quick] [--json out.json]
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
from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recorder.agents import RandomAgent, agent_source  # noqa: E402
from recorder.cli import default_workers, encode_in_recorder  # noqa: E402
from recorder.delivery.link import AGENT_BATCH_STEPS, probe_writer  # noqa: E402
from recorder.envs import frame_of, make_env, platform_named, resolve_env  # noqa: E402
from recorder.headless.loop import RecordSettings, record_worker  # noqa: E402
from recorder.headless.workers import run_workers  # noqa: E402
from recorder.seeds import episode_seed  # noqa: E402
from shared.codec import encode_frame  # noqa: E402

BASE_SEED = 3

ENVS = {"atari": "BreakoutNoFrameskip-v4", "retro": "Airstriker-Genesis-v0",
        "vizdoom": "VizdoomBasic-v1"}


def _episodes(env_id: str, episodes: int, max_steps: int, on_frame,
              seeded: bool = True) -> tuple[int, float]:
    """Play the benchmark's episode schedule (the seeded random agent; every reset seeded, or
    only the first: `seeded`) calling `on_frame(frame)` for every frame; returns (frames,
    seconds)."""
    env = make_env(resolve_env(env_id))
    agent = RandomAgent(env.action_space)
    frames = 0
    started = time.perf_counter()
    for episode in range(episodes):
        seed = episode_seed(BASE_SEED, episode)
        obs, _ = env.reset(seed=seed) if seeded or episode == 0 else env.reset()
        agent.reset(seed)
        for _ in range(max_steps):
            on_frame(frame_of(obs, env))
            obs, _, term, trunc, _ = env.step(agent.act(obs))
            frames += 1
            if term or trunc:
                break
    elapsed = time.perf_counter() - started
    env.close()
    return frames, elapsed


def bare_step_seconds(env_id: str, episodes: int, max_steps: int,
                      seeded: bool = True) -> tuple[float, list]:
    """Seconds per frame of the env alone (resets included), and sample frames."""
    sample: list[np.ndarray] = []
    frames, elapsed = _episodes(env_id, episodes, max_steps,
                                lambda f: sample.append(f) if len(sample) < 200 else None,
                                seeded)
    return elapsed / frames, sample


def encode_seconds(frames: list[np.ndarray], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            encode_frame(f, list(f.shape), "jpeg", 95)
    return (time.perf_counter() - started) / (repeat * len(frames))


def seed_style_fps(env_id: str, episodes: int, max_steps: int) -> float:
    """The seed's approach: encode each frame inside the loop and keep it in memory."""
    kept: list[bytes] = []
    frames, elapsed = _episodes(env_id, episodes, max_steps,
                                lambda f: kept.append(encode_frame(f, list(f.shape), "jpeg", 95)))
    return frames / elapsed


def _ceiling_worker(env_id: str, max_steps: int, numbers, claimed, out) -> None:
    """One core's share of the ceiling run: take the next episode number, play it with each
    frame JPEG-encoded inside the loop (unseeded resets after the first), until none is left."""
    env = make_env(resolve_env(env_id))
    agent = RandomAgent(env.action_space)
    frames, first = 0, True
    started = time.perf_counter()
    while True:
        with claimed.get_lock():
            number = claimed.value
            claimed.value += 1
        if number >= numbers:
            break
        seed = episode_seed(BASE_SEED, number)
        obs, _ = env.reset(seed=seed) if first else env.reset()
        first = False
        agent.reset(seed)
        for _ in range(max_steps):
            f = frame_of(obs, env)
            encode_frame(f, list(f.shape), "jpeg", 95)
            obs, _, term, trunc, _ = env.step(agent.act(obs))
            frames += 1
            if term or trunc:
                break
    out.put((frames, time.perf_counter() - started))
    env.close()


def ceiling_fps(env_id: str, episodes: int, max_steps: int) -> float:
    """What two cores do with nothing but stepping and encoding: two processes, each taking
    the next episode and encoding its frames in the loop (no transport, no storage). The
    bound assumes both at their one-core speed; this shows what running both at once costs."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    claimed, out = ctx.Value("i", 0), ctx.Queue()
    procs = [ctx.Process(target=_ceiling_worker, args=(env_id, max_steps, episodes, claimed, out))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(n for n, _ in results) / max(t for _, t in results)


def gymrec_fps(env_id: str, episodes: int, max_steps: int, workdir: Path,
               shared_memory: bool = True, batch_steps: int = AGENT_BATCH_STEPS,
               workers: int = 1, encode_in: str = "auto") -> float:
    """Frames durable per second: recorder loop (this process) + writer (another process).
    `encode_in`: where frames become images (`gymrec-record --encode-in`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    data_dir = Path(tempfile.mkdtemp(dir=workdir))
    writer = subprocess.Popen([sys.executable, "-m", "writer.cli", "--endpoint", endpoint,
                               "--data-dir", str(data_dir), "--nice", "0"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while probe_writer(endpoint, 0.3) is None:
            time.sleep(0.1)
        settings = RecordSettings(
            choice=resolve_env(env_id), endpoint=endpoint, data_dir=data_dir,
            episodes=episodes, max_steps=max_steps, base_seed=BASE_SEED,
            agent=agent_source("random"),
            codec="jpeg", quality=95, fps=60, buffer_bytes=256 * 2**20, drain_timeout=120,
            collector="bench", shared_memory=shared_memory, batch_steps=batch_steps,
            workers=workers, encode_frames=encode_in_recorder(encode_in, workers, False))
        if workers == 1:
            results = [record_worker(settings, 0, lambda p: None)]
        else:  # worker processes, as `gymrec-record --workers N` runs them
            results = run_workers(settings).workers
    finally:
        writer.terminate()
        writer.wait(30)
    return sum(r.steps_durable for r in results) / max(r.elapsed_s for r in results)


# episodes, max steps: Breakout's 64 episodes are the command (`--episodes 64`)
SCHEDULE = {"atari": (64, 1500), "retro": (3, 1500), "vizdoom": (12, 300)}
FAST = {"atari": (8, 1000), "retro": (2, 1000), "vizdoom": (8, 250)}  # --fast: ~4 min in all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small run (used by the tests)")
    parser.add_argument("--fast", action="store_true",
                        help="2 repeats of a shorter schedule: under 5 minutes")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--platforms", default="atari,retro,vizdoom")
    parser.add_argument("--plot", type=Path, default=None, help="save a bar chart (PNG)")
    parser.add_argument("--variants", action="store_true",
                        help="also measure without shared memory and without batching")
    args = parser.parse_args()
    repeats = 1 if args.quick else (2 if args.fast else args.repeats)
    schedule = FAST if args.fast else SCHEDULE
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    results = {}
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as bar:
        platforms = args.platforms.split(",")
        task = bar.add_task("benchmark", total=len(platforms) * repeats)
        for platform in platforms:
            env_id = ENVS[platform]
            episodes, max_steps = (2, 100) if args.quick else schedule[platform]
            cores_per_recorder = platform_named(resolve_env(env_id).platform).cores_per_recorder
            workers = default_workers(episodes, realtime=False,
                                      cores_per_recorder=cores_per_recorder)
            runs = []
            for _ in range(repeats):
                seeded_step, _ = bare_step_seconds(env_id, episodes, max_steps)
                step, sample = bare_step_seconds(env_id, episodes, max_steps, seeded=False)
                encode = encode_seconds(sample, max(1, 1000 // len(sample)))
                seed = seed_style_fps(env_id, episodes, max_steps)
                ours = gymrec_fps(env_id, episodes, max_steps, Path(tmp))
                two = gymrec_fps(env_id, episodes, max_steps, Path(tmp), workers=workers)
                writer_encodes = gymrec_fps(env_id, episodes, max_steps, Path(tmp),
                                            workers=workers, encode_in="writer")
                ceiling = ceiling_fps(env_id, episodes, max_steps)
                bound = 2 / (step + encode)
                run = {"step_ms": step * 1e3, "seeded_step_ms": seeded_step * 1e3,
                       "encode_ms": encode * 1e3, "bound_fps": bound,
                       "seed_fps": seed, "gymrec_fps": ours, "vs_bound": ours / bound,
                       "vs_seed": ours / seed, "workers": workers, "workers2_fps": two,
                       "workers2_vs_bound": two / bound, "workers2_vs_seed": two / seed,
                       "ceiling_fps": ceiling, "ceiling_vs_bound": ceiling / bound,
                       "workers2_vs_ceiling": two / ceiling,
                       "encoded_in_recorders": encode_in_recorder("auto", workers, False),
                       "writer_encodes_fps": writer_encodes,
                       "writer_encodes_vs_bound": writer_encodes / bound}
                if args.variants:
                    socket_only = gymrec_fps(env_id, episodes, max_steps, Path(tmp),
                                             shared_memory=False)
                    unbatched = gymrec_fps(env_id, episodes, max_steps, Path(tmp),
                                           shared_memory=False, batch_steps=1)
                    run.update(socket_vs_bound=socket_only / bound,
                               unbatched_vs_bound=unbatched / bound)
                runs.append(run)
                bar.advance(task)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            spread = {k: (min(r[k] for r in runs), max(r[k] for r in runs)) for k in runs[0]}
            results[platform] = {"env_id": env_id, "median": med, "range": spread,
                                 "runs": runs}
            bar.console.print(
                f"{env_id:24s} step {med['step_ms']:.3f} ms (every reset seeded "
                f"{med['seeded_step_ms']:.3f})  encode {med['encode_ms']:.3f} ms"
                f"  bound {med['bound_fps']:,.0f}/s  seed {med['seed_fps']:,.0f}/s  "
                f"gymrec {med['gymrec_fps']:,.0f}/s = {med['vs_bound']:.2f}x bound "
                f"[{spread['vs_bound'][0]:.2f}-{spread['vs_bound'][1]:.2f}], "
                f"{med['vs_seed']:.2f}x seed; default --workers {workers}: "
                f"{med['workers2_fps']:,.0f}/s = "
                f"{med['workers2_vs_bound']:.2f}x bound "
                f"[{spread['workers2_vs_bound'][0]:.2f}-{spread['workers2_vs_bound'][1]:.2f}], "
                f"{med['workers2_vs_seed']:.2f}x seed, {med['workers2_vs_ceiling']:.2f}x the "
                f"ceiling (two processes stepping and encoding only: {med['ceiling_fps']:,.0f}/s"
                f" = {med['ceiling_vs_bound']:.2f}x bound); default workers with the writer "
                f"encoding: {med['writer_encodes_fps']:,.0f}/s = "
                f"{med['writer_encodes_vs_bound']:.2f}x bound"
                + (f"; socket only {med['socket_vs_bound']:.2f}x, one step per message "
                   f"{med['unbatched_vs_bound']:.2f}x" if args.variants else ""))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)


def plot(results: dict, path: Path) -> None:
    """Bars per platform: frames/s of the seed's approach, gymrec (1 recorder; default workers,
    frames encoded where the default says and by the writer), the ceiling and the two-core work
    bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    series = [("seed approach (encode in loop)", "seed_fps"), ("gymrec, 1 recorder",
              "gymrec_fps"), ("gymrec, default workers (one per core)", "workers2_fps"),
              ("gymrec, default workers, writer encodes", "writer_encodes_fps"),
              ("ceiling: 2 processes, step + encode only", "ceiling_fps"),
              ("two-core bound 2/(step+encode)", "bound_fps")]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.14
    for i, (label, key) in enumerate(series):
        values = [results[n]["median"][key] for n in names]
        lows = [results[n]["range"][key][0] for n in names]
        highs = [results[n]["range"][key][1] for n in names]
        xs = [j + (i - 2.5) * width for j in range(len(names))]
        ax.bar(xs, values, width, label=label,
               yerr=[[v - lo for v, lo in zip(values, lows, strict=True)],
                     [hi - v for v, hi in zip(values, highs, strict=True)]], capsize=3)
    ax.set_xticks(range(len(names)), [results[n]["env_id"] for n in names])
    ax.set_ylabel("frames per second, durable")
    ax.set_title("Headless collection on 2 cores (median, range over repeats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
