"""Game-loop benchmark: what does recording cost the human-play loop, per platform and FPS?

The window loop of `recorder.play.window` runs (SDL dummy driver, window drawn at 2x with its
HUD, keys scripted: the held keys change every few frames) in three variants, taken in turn in
one run:

    off     nothing recorded: play() with an OfflineLink (same env, input, drawing and HUD)
    gymrec  recording into a real writer process that encodes and writes on the same machine
    seed    the seed's approach: each frame JPEG-encoded (q95 4:4:4) inside the loop, the bytes
            kept in memory until the end

Per frame: its work (from the end of one pacing wait to the start of the next: events, step,
send, draw, flip) and the interval from the previous frame (the jitter a player sees). Issue 7's
goal: recording costs < 1% of the frame budget at the median, p99 within 2 ms of `off`. The
difference from `off` compares two runs, so on a shared machine it carries their noise; for
gymrec the time spent inside the link's calls (send_step, send_episode_end, pump: the frame
into the ring, batching, packing, sending, reading acks) is also timed per frame, in the run.

    uv run python scripts/bench_loop.py [--seconds 7] [--repeats 3] [--fast] [--quick]
                                        [--only retro@60] [--json out.json]
                                        [--plot docs/images/bench-loop.png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # before pygame is imported
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from bench_common import ENVS, ROOT, Writer, fmt_spread, markdown_table, spread  # noqa: E402

import recorder.play.window as window  # noqa: E402
from recorder.delivery.link import WriterLink  # noqa: E402
from recorder.envs import resolve_env  # noqa: E402
from recorder.play.keymaps import load_keymap  # noqa: E402
from recorder.play.window import OfflineLink, PlaySettings, PlayStatus, play  # noqa: E402
from shared.codec import encode_frame  # noqa: E402
from shared.schema import EpisodeEndData, StepData  # noqa: E402

CONFIGS = [("atari", 15.0), ("atari", 60.0), ("vizdoom", 35.0), ("vizdoom", 60.0),
           ("retro", 60.0)]
VARIANTS = ["off", "gymrec", "seed"]
# Held keys, one set after another, each for HOLD frames (key names as pygame spells them).
KEYS = {"atari": [{"right"}, {"right", "space"}, {"left"}, set(), {"left", "space"}, {"space"}],
        "vizdoom": [{"left"}, {"left ctrl"}, {"right"}, {"right", "left ctrl"}, set(),
                    {"space"}],
        "retro": [{"right", "x"}, {"up"}, {"left", "z"}, {"down", "x"}, set(), {"right"}]}
HOLD = 5
WARMUP = 10  # frames left out of the statistics (the title frame, first draws)
BASE_SEED = 7


class ScriptedPlayer:
    """An event source that starts the session, holds KEYS in turn (real key events posted into
    pygame's queue) and presses Esc once `frames` frames have been shown."""

    def __init__(self, platform: str, frames: int):
        self.key_sets, self.frames = KEYS[platform], frames
        self.held: set[str] = set()

    def __call__(self, status: PlayStatus) -> list:
        import pygame

        wanted, taps = set(), []
        if status.phase == "ready":
            taps = ["space"]
        elif status.tick >= self.frames:
            taps = ["escape"]
        else:
            wanted = self.key_sets[(status.tick // HOLD) % len(self.key_sets)]
        for kind, names in ((pygame.KEYUP, sorted(self.held - wanted)),
                            (pygame.KEYDOWN, sorted(wanted - self.held))):
            for name in names:
                pygame.event.post(_key(kind, name))
        for name in taps:
            pygame.event.post(_key(pygame.KEYDOWN, name))
            pygame.event.post(_key(pygame.KEYUP, name))
        self.held = set(wanted)
        return pygame.event.get()


def _key(kind: int, name: str):
    import pygame

    return pygame.event.Event(kind, key=pygame.key.key_code(name), mod=0, unicode="",
                              scancode=0)


class SeedStyleLink(OfflineLink):
    """The seed's recorder: every frame JPEG-encoded in the game loop, kept until the end."""

    def __init__(self):
        super().__init__()
        self.kept: list[bytes] = []

    def send_step(self, step: StepData) -> bool:
        self.kept.append(encode_frame(step.frame, list(step.frame.shape), "jpeg", 95))
        return True

    def send_episode_end(self, end: EpisodeEndData) -> None:
        self.kept.append(encode_frame(end.frame, list(end.frame.shape), "jpeg", 95))


class TimedLink(WriterLink):
    """The real link, timing its calls in the game loop; `per_frame` gets their time per frame
    (a frame's calls run from one send_step to the next), in seconds."""

    per_frame: list[float] = []
    _spent = 0.0

    def _timed(self, call, *args, **kwargs):
        began = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            TimedLink._spent += time.perf_counter() - began

    def send_step(self, step: StepData) -> bool:
        TimedLink.per_frame.append(TimedLink._spent)
        TimedLink._spent = 0.0
        return self._timed(super().send_step, step)

    def send_episode_end(self, end: EpisodeEndData) -> None:
        self._timed(super().send_episode_end, end)

    def pump(self, *args, **kwargs) -> None:
        self._timed(super().pump, *args, **kwargs)


window.WriterLink = TimedLink  # the gymrec variant's link (the others pass their own)


def run_once(platform: str, fps: float, variant: str, seconds: float, writer: Writer) -> dict:
    """One session of `seconds` in the window loop; per-frame work and intervals in ms."""
    choice = resolve_env(ENVS[platform])
    settings = PlaySettings(
        choice=choice, endpoint=writer.endpoint, data_dir=writer.data_dir, fps=fps,
        keymap=load_keymap(None, choice.platform), base_seed=BASE_SEED, codec="jpeg",
        quality=95, buffer_bytes=256 << 20, drain_timeout=60, collector="bench-loop")
    link = {"off": OfflineLink(), "seed": SeedStyleLink(), "gymrec": None}[variant]
    frames = int(seconds * fps) + WARMUP
    TimedLink.per_frame, TimedLink._spent = [], 0.0
    result = play(settings, events=ScriptedPlayer(platform, frames), link=link)
    link_ms = np.asarray(TimedLink.per_frame[WARMUP + 1:] or [np.nan]) * 1e3
    progress = result.progress
    if variant == "gymrec" and (progress.steps_durable != progress.steps
                                or progress.steps_dropped or progress.unconfirmed):
        raise SystemExit(f"{choice.env_id}: the writer did not confirm every step: {progress}")
    return {"work_ms": np.asarray(result.work_s[WARMUP:]) * 1e3,
            "interval_ms": np.asarray(result.intervals_s[WARMUP:]) * 1e3,
            "late": result.late, "steps": progress.steps, "durable": progress.steps_durable,
            "link_ms": link_ms}


def summarise(run: dict, budget_ms: float) -> dict:
    work, interval = run["work_ms"], run["interval_ms"]
    return {"work_p50": float(np.percentile(work, 50)),
            "work_p99": float(np.percentile(work, 99)), "work_max": float(work.max()),
            "interval_p50": float(np.percentile(interval, 50)),
            "interval_p99": float(np.percentile(interval, 99)),
            "interval_max": float(interval.max()),
            "jitter_sd": float(interval.std()),
            "late": run["late"], "frames": int(work.size),
            "over_budget": int((work > budget_ms).sum()),
            "link_p50": float(np.median(run["link_ms"])),
            "link_p50_pct": float(np.median(run["link_ms"])) / budget_ms * 100}


def bench(configs, seconds: float, repeats: int, workdir: Path, bar: Progress) -> dict:
    results: dict = {}
    task = bar.add_task("bench_loop", total=len(configs) * repeats * len(VARIANTS))
    with Writer(workdir / "data") as writer:
        for platform, fps in configs:
            budget = 1000 / fps
            runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            pooled: dict[str, dict[str, list]] = {v: {"work_ms": [], "interval_ms": []}
                                                 for v in VARIANTS}
            for repeat in range(repeats):
                order = VARIANTS[repeat % len(VARIANTS):] + VARIANTS[:repeat % len(VARIANTS)]
                for variant in order:
                    bar.update(task, description=f"{platform} @{fps:g} {variant}")
                    run = run_once(platform, fps, variant, seconds, writer)
                    runs[variant].append(summarise(run, budget))
                    for key in ("work_ms", "interval_ms"):
                        pooled[variant][key].append(run[key])
                    bar.advance(task)
                    time.sleep(0.5)  # let the writer seal the session before the next run
            key = f"{platform}@{fps:g}"
            results[key] = {"env_id": ENVS[platform], "fps": fps, "budget_ms": budget,
                            "variants": aggregate(runs, pooled, budget)}
            bar.console.print(f"{key} done")
    return results


def aggregate(runs: dict[str, list[dict]], pooled: dict, budget: float) -> dict:
    """Per variant: each measure's median and range over repeats, the difference from `off`
    in the same repeat, and all frames pooled (for the plot)."""
    out = {}
    for variant, per in runs.items():
        pairs = list(zip(per, runs["off"], strict=True))
        out[variant] = {
            **{m: spread([r[m] for r in per]) for m in per[0]},
            "d_work_p50_pct": spread([(r["work_p50"] - b["work_p50"]) / budget * 100
                                      for r, b in pairs]),
            "d_work_p99_ms": spread([r["work_p99"] - b["work_p99"] for r, b in pairs]),
            "runs": per,
            "pooled": {k: np.concatenate(v) for k, v in pooled[variant].items()}}
    return out


def table(results: dict) -> str:
    rows = []
    for r in results.values():
        for variant, e in r["variants"].items():
            goal = ""
            if variant != "off":
                met = e["d_work_p50_pct"]["median"] < 1 and e["d_work_p99_ms"]["median"] < 2
                goal = "met" if met else "**missed**"
            rows.append([
                f"{r['env_id']} @{r['fps']:g}", variant, fmt_spread(e["work_p50"]),
                fmt_spread(e["work_p99"]), f"{e['work_max']['max']:.1f}",
                fmt_spread(e["interval_p50"], 1), fmt_spread(e["interval_p99"], 1),
                f"{e['interval_max']['max']:.1f}", fmt_spread(e["jitter_sd"]),
                f"{int(sum(x['late'] for x in e['runs']))}/"
                f"{int(sum(x['frames'] for x in e['runs']))}",
                "" if variant == "off" else fmt_spread(e["d_work_p50_pct"]),
                "" if variant == "off" else fmt_spread(e["d_work_p99_ms"]),
                "" if variant != "gymrec" or "link_p50" not in e else
                f"{fmt_spread(e['link_p50'], 3)} = {fmt_spread(e['link_p50_pct'])}%", goal])
    header = ["env @fps", "variant", "work p50 ms", "work p99 ms", "work max ms",
              "interval p50 ms", "interval p99 ms", "interval max ms", "interval sd ms",
              "late/frames", "Δ work p50, % of budget", "Δ work p99 ms",
              "link calls p50 ms, % of budget", "goal"]
    return markdown_table(header, rows)


def plot(results: dict, path: Path) -> None:
    """Top: CDF of the work per frame. Bottom: the tail of the jitter, the share of frames whose
    interval is more than x ms off the budget (either way)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter

    keys = list(results)
    fig, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys), 6.4), squeeze=False)
    colours = {"off": "tab:grey", "gymrec": "tab:blue", "seed": "tab:red"}
    for col, key in enumerate(keys):
        r = results[key]
        top, bottom = axes[0][col], axes[1][col]
        for variant, e in r["variants"].items():
            work = np.sort(np.asarray(e["pooled"]["work_ms"]))
            top.plot(work, np.arange(1, work.size + 1) / work.size, color=colours[variant],
                     label=variant, lw=1.4)
            off = np.sort(np.abs(np.asarray(e["pooled"]["interval_ms"]) - r["budget_ms"]))
            bottom.step(off, 1 - np.arange(off.size) / off.size, where="post",
                        color=colours[variant], label=variant, lw=1.4)
        top.set_xscale("log")
        top.xaxis.set_major_locator(FixedLocator([0.3, 0.5, 1, 2, 3, 5, 10, 20]))
        top.xaxis.set_major_formatter("{x:g}")
        top.xaxis.set_minor_formatter(NullFormatter())
        top.axhline(0.99, color="black", lw=0.5, ls=":")
        top.set_title(f"{r['env_id']} @{r['fps']:g} fps\n(budget {r['budget_ms']:.1f} ms)",
                      fontsize=9)
        top.set_xlabel("work per frame, ms (log)")
        bottom.set_yscale("log")
        bottom.set_xlim(0, 5)
        bottom.set_ylim(1e-3, 1.05)
        bottom.set_xlabel("|interval − budget|, ms")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
        if col == 0:
            top.set_ylabel("fraction of frames ≤ x")
            bottom.set_ylabel("fraction of frames > x")
            top.legend(fontsize=8)
    fig.suptitle("Game loop: work per frame (CDF) and frame-interval jitter (tail), without "
                 "recording (off), recording into a writer process (gymrec), JPEG-encoding in "
                 "the loop (seed)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=7.0, help="per variant and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds on Atari only (a smoke test; used by the tests)")
    parser.add_argument("--fast", action="store_true",
                        help="2 repeats of 4 s per variant: under 5 minutes")
    parser.add_argument("--only", default=None,
                        help="configurations to run, e.g. retro@60,atari@15 (default: all)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None,
                        help="measure nothing: print the table and draw the plot of a --json")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG to draw (default docs/images/bench-loop.png, none with --quick)")
    args = parser.parse_args()
    configs, seconds, repeats = CONFIGS, args.seconds, args.repeats
    if args.fast:
        seconds, repeats = 4.0, 2
    if args.only:
        wanted = set(args.only.split(","))
        configs = [(p, f) for p, f in CONFIGS if f"{p}@{f:g}" in wanted]
    if args.quick:
        configs, seconds, repeats = [("atari", 60.0)], 1.0, 1
    plot_path = args.plot or (None if args.quick else ROOT / "docs/images/bench-loop.png")
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        repeats = len(next(iter(results.values()))["variants"]["off"]["runs"])
    else:
        with tempfile.TemporaryDirectory(prefix="gymrec-bench-loop-") as tmp, \
                Progress(transient=True) as bar:
            results = bench(configs, seconds, repeats, Path(tmp), bar)
    print(f"Frame work and interval, medians over {repeats} run(s) "
          "(range in brackets); max and late frames over all runs.\n")
    print(table(results))
    if plot_path:
        plot(results, plot_path)
        print(f"\nplot: {plot_path}")
    if args.json and not args.from_json:
        for r in results.values():
            for e in r["variants"].values():
                e["pooled"] = {k: np.round(v, 4).tolist() for k, v in e["pooled"].items()}
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
