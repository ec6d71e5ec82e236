"""Writer memory over a long session: does the writer's RSS stay flat over 200k+ frames?

A real writer process (its defaults) receives one headless session of BreakoutNoFrameskip-v4
played by the random agent as fast as the pipeline goes (`record_worker`, in this process).
Every 0.5 s the writer's and this recorder's resident memory (VmRSS) are sampled together with
the frames the writer has confirmed durable. Reported: RSS at the start (writer idle), peak and
end of the session, after 3 s idle, and the slope after warm-up (least squares over the samples
past `--warmup` frames) in MiB per 10k frames.

    uv run python scripts/bench_memory.py [--episodes 320] [--quick] [--json out.json]
                                          [--plot docs/images/bench-memory.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ENVS, ROOT, Writer, markdown_table, memory_mb  # noqa: E402

from recorder.agents import agent_source  # noqa: E402
from recorder.envs import resolve_env  # noqa: E402
from recorder.headless.loop import RecordSettings, WorkerProgress, record_worker  # noqa: E402

SAMPLE_S = 0.5
# The columns of a sample: seconds, frames durable, then MiB per process and kind of memory.
COLUMNS = ["seconds", "frames", "writer rss", "writer anon", "writer shmem", "recorder rss",
           "recorder anon", "recorder shmem"]
SERIES = ["writer rss", "writer anon", "recorder rss", "recorder anon"]
IDLE_S = 3.0  # sampled after the session, with the writer idle


class Sampler(threading.Thread):
    """Samples COLUMNS every SAMPLE_S."""

    def __init__(self, writer: Writer):
        super().__init__(daemon=True)
        self.writer = writer
        self.durable = 0  # set by the recorder's progress reports
        self.samples: list[list[float]] = []
        self._done = threading.Event()
        self._began = time.monotonic()

    def sample(self) -> None:
        writer, recorder = self.writer.memory_mb(), memory_mb()
        self.samples.append([time.monotonic() - self._began, self.durable,
                             writer["rss"], writer["anon"], writer["shmem"],
                             recorder["rss"], recorder["anon"], recorder["shmem"]])

    def run(self) -> None:
        while not self._done.wait(SAMPLE_S):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()


def bench(episodes: int, max_steps: int | None, warmup: int, workdir: Path,
          bar: Progress) -> dict:
    env_id = ENVS["atari"]
    with Writer(workdir / "data") as writer:
        sampler = Sampler(writer)
        sampler.sample()  # the writer idle, before the session
        sampler.start()
        task = bar.add_task("session", total=None)

        def report(progress: WorkerProgress) -> None:
            sampler.durable = progress.steps_durable
            bar.update(task, description=f"{progress.steps_durable:,} frames durable, "
                       f"writer {sampler.samples[-1][2]:.0f} MiB RSS")

        settings = RecordSettings(
            choice=resolve_env(env_id), endpoint=writer.endpoint, data_dir=writer.data_dir,
            episodes=episodes, max_steps=max_steps, base_seed=11, agent=agent_source("random"),
            codec="jpeg", quality=95, fps=60, buffer_bytes=256 << 20, drain_timeout=120,
            collector="bench-memory")
        progress = record_worker(settings, 0, report)
        session_end = len(sampler.samples)
        time.sleep(IDLE_S)
        sampler.stop()
        sampler.sample()
    if progress.steps_durable != progress.steps or progress.steps_dropped:
        raise SystemExit(f"the writer did not confirm every step: {progress}")
    samples = np.array(sampler.samples)
    during = samples[1:session_end]
    steady = during[during[:, 1] >= warmup]
    slopes = {}
    for name in SERIES:
        col = COLUMNS.index(name)
        fit = np.polyfit(steady[:, 1], steady[:, col], 1)[0] * 10_000 \
            if len(steady) > 2 else float("nan")
        slopes[name] = {"start": samples[0, col], "peak": during[:, col].max(),
                        "end": during[-1, col], "idle": samples[-1, col],
                        "warm": steady[0, col] if len(steady) else float("nan"),
                        "slope_per_10k": float(fit)}
    return {"env_id": env_id, "frames": progress.steps, "episodes": progress.episodes,
            "seconds": progress.elapsed_s, "warmup_frames": warmup, "rss": slopes,
            "samples": samples.tolist(), "session_end_index": session_end}


def table(result: dict) -> str:
    rows = [[name, f"{r['start']:.0f}", f"{r['warm']:.0f}", f"{r['peak']:.0f}", f"{r['end']:.0f}",
             f"{r['idle']:.0f}", f"{r['slope_per_10k']:+.2f}"]
            for name, r in result["rss"].items()]
    header = ["process, memory", "start MiB", f"at {result['warmup_frames']:,} frames MiB",
              "peak MiB", "session end MiB", f"idle {IDLE_S:g} s later MiB",
              "slope after warm-up, MiB / 10k frames"]
    return markdown_table(header, rows)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = np.array(result["samples"])
    during = samples[1:result["session_end_index"]]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    styles = {"writer rss": ("tab:blue", "-"), "writer anon": ("tab:blue", "--"),
              "recorder rss": ("tab:orange", "-"), "recorder anon": ("tab:orange", "--")}
    for name, (colour, line) in styles.items():
        label = name.replace("rss", "RSS").replace("anon", "private (RssAnon)")
        ax.plot(during[:, 1] / 1000, during[:, COLUMNS.index(name)], color=colour, ls=line,
                label=label, lw=1.4)
    ax.axvline(result["warmup_frames"] / 1000, color="grey", lw=0.8, ls=":",
               label="end of warm-up")
    ax.set_xlabel("frames durable (thousands)")
    ax.set_ylabel("RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    ax.set_title(f"Resident memory over one session: {result['env_id']}, random agent, "
                 f"{result['frames']:,} frames, JPEG q95", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=320,
                        help="random Breakout episodes (~700 frames each)")
    parser.add_argument("--warmup", type=int, default=20_000, help="frames before the fit")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds (a smoke test; used by the tests)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG to draw (default docs/images/bench-memory.png, none with "
                             "--quick)")
    args = parser.parse_args()
    episodes, max_steps, warmup = args.episodes, None, args.warmup
    if args.quick:
        episodes, max_steps, warmup = 4, 400, 400
    plot_path = args.plot or (None if args.quick else ROOT / "docs/images/bench-memory.png")
    with tempfile.TemporaryDirectory(prefix="gymrec-bench-memory-") as tmp, \
            Progress(transient=True) as bar:
        result = bench(episodes, max_steps, warmup, Path(tmp), bar)
    print(f"{result['env_id']}: {result['frames']:,} frames in {result['episodes']} episodes, "
          f"{result['seconds']:.0f} s ({result['frames'] / result['seconds']:,.0f} frames/s), "
          f"RSS sampled every {SAMPLE_S:g} s\n")
    print(table(result))
    if plot_path:
        plot(result, plot_path)
        print(f"\nplot: {plot_path}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
