"""What `--record` (RAM, VizDoom's buffers) costs: in the game loop, per step, reading the extras
(`Episode`: the platform's reader) and copying them into the step message (the link's
`tobytes`), next to `env.step` and the frame budget at the env's own rate; in the writer, turning
them into their columns (PNG for images); and on disk, the dataset per 1,000 frames with the
default columns and with the extras (Arrow shards, and the Hub's zstd Parquet).

    uv run python scripts/bench_extras.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ENVS, Writer, markdown_table  # noqa: E402

from recorder.agents import agent_source  # noqa: E402
from recorder.envs import extras_reader, extras_spec, make_env, native_fps, resolve_env  # noqa: E402
from recorder.headless.loop import RecordSettings, record_worker  # noqa: E402
from shared.config import dataset_dir  # noqa: E402
from shared.layout import DatasetLayout  # noqa: E402
from shared.schema import extra_cells  # noqa: E402
from writer.hub.upload import stage_parquet  # noqa: E402
from writer.store.shards import load_manifest  # noqa: E402

RECORD = {"atari": ("ram",), "retro": ("ram",), "vizdoom": ("depth", "labels", "automap")}
# Episodes × max steps for about 1,000 frames (VizdoomBasic's episodes are short).
SCHEDULE = {"atari": (1, 1000), "retro": (1, 1000), "vizdoom": (12, 300)}
MB = 1e6


def loop_cost(platform: str, steps: int) -> dict:
    """Per step, µs: env.step, reading the extras, copying them for the wire; and the writer's
    conversion of one step's extras into columns."""
    names = RECORD[platform]
    env = make_env(resolve_env(ENVS[platform], record=names))
    try:
        env.action_space.seed(1)
        observation, _ = env.reset(seed=1)
        read = extras_reader(env, names)
        declared = extras_spec(read(observation))
        step_us, read_us, copy_us, writer_us = [], [], [], []
        for i in range(steps):
            started = time.perf_counter()
            observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
            stepped = time.perf_counter()
            extras = read(observation)
            was_read = time.perf_counter()
            buffers = [a.tobytes() for a in extras.values()]
            copied = time.perf_counter()
            step_us.append((stepped - started) * 1e6)
            read_us.append((was_read - stepped) * 1e6)
            copy_us.append((copied - was_read) * 1e6)
            if i % 10 == 0:  # the writer's side, on a sample
                converting = time.perf_counter()
                extra_cells(declared, buffers)
                writer_us.append((time.perf_counter() - converting) * 1e6)
            if terminated or truncated:
                env.reset()
        fps = native_fps(env)
    finally:
        env.close()
    loop = [r + c for r, c in zip(read_us, copy_us, strict=True)]
    return {"env_id": ENVS[platform], "record": ",".join(names), "fps": fps,
            "budget_us": 1e6 / fps, "step": _stats(step_us), "loop": _stats(loop),
            "writer": _stats(writer_us),
            "bytes": sum(int(np.prod(d["shape"])) for d in declared.values())}


def _stats(values: list[float]) -> tuple[float, float]:
    return float(np.median(values)), float(np.percentile(values, 99))


def size(platform: str, record: tuple[str, ...], workdir: Path) -> dict:
    """Record SCHEDULE's seeded random episodes into a writer of its own, JPEG; bytes of its
    Arrow shards and of their Hub Parquet, per 1,000 rows."""
    episodes, max_steps = SCHEDULE[platform]
    env_id = ENVS[platform]
    name = f"{platform}-{'-'.join(record) or 'default'}"
    began = time.perf_counter()
    with Writer(workdir / name) as writer:
        settings = RecordSettings(
            choice=resolve_env(env_id, record=record), endpoint=writer.endpoint,
            data_dir=writer.data_dir, episodes=episodes, max_steps=max_steps, base_seed=5,
            agent=agent_source("random"), codec="jpeg", quality=95, fps=60,
            buffer_bytes=256 << 20, drain_timeout=300, collector="bench-extras")
        progress = record_worker(settings, 0, lambda p: None)
    if progress.steps_durable != progress.steps or progress.steps_dropped:
        raise SystemExit(f"{env_id}: the writer did not confirm every step: {progress}")
    print(f"  {name}: {progress.steps} steps durable in {progress.elapsed_s:.1f} s "
          f"({progress.steps / progress.elapsed_s:.0f} steps/s; writer start included: "
          f"{time.perf_counter() - began:.1f} s)", flush=True)
    root = dataset_dir(writer.data_dir, env_id)
    layout = DatasetLayout(root)
    rows = arrow = parquet = 0
    for shard in load_manifest(layout)["shards"]:
        with pa.memory_map(str(root / shard["file"])) as stream:
            rows += ipc.open_stream(stream).read_all().num_rows
        arrow += (root / shard["file"]).stat().st_size
        parquet += stage_parquet(layout, shard)[0].stat().st_size
    return {"rows": rows, "arrow": arrow * 1000 / rows, "parquet": parquet * 1000 / rows,
            "steps_per_s": progress.steps / progress.elapsed_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    for platform in ("atari", "retro", "vizdoom"):
        r = loop_cost(platform, args.steps)
        rows.append([r["env_id"], r["record"], f"{r['bytes']:,}", f"{r['fps']:g}",
                     f"{r['step'][0]:.0f} / {r['step'][1]:.0f}",
                     f"{r['loop'][0]:.1f} / {r['loop'][1]:.1f}",
                     f"{100 * r['loop'][0] / r['budget_us']:.3f} %",
                     f"{r['writer'][0]:.0f} / {r['writer'][1]:.0f}"])
    print(f"Per step, µs, median / p99 over {args.steps} random steps\n")
    print(markdown_table(["env", "--record", "bytes a step", "fps", "env.step",
                          "extras in the loop (read + copy)", "% of frame budget (median)",
                          "writer: columns (PNG for images)"], rows))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for platform in ("atari", "retro", "vizdoom"):
            plain = size(platform, (), Path(tmp))
            extra = size(platform, RECORD[platform], Path(tmp))
            rows.append([ENVS[platform], ",".join(RECORD[platform]), f"{plain['rows']:,}",
                         f"{plain['arrow'] / MB:.2f}", f"{extra['arrow'] / MB:.2f}",
                         f"{plain['parquet'] / MB:.2f}", f"{extra['parquet'] / MB:.2f}",
                         f"{plain['steps_per_s']:.0f} / {extra['steps_per_s']:.0f}"])
    print("\nDataset size per 1,000 frames (JPEG q95, seeded random episodes), MB\n")
    print(markdown_table(["env", "--record", "frames", "Arrow, default", "Arrow, with extras",
                          "Parquet zstd, default", "Parquet zstd, with extras",
                          "headless steps/s, default / with extras"], rows))


if __name__ == "__main__":
    main()
