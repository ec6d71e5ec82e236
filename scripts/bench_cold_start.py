"""Cold start of the README's first command: how long a user waits beyond the recording itself.

    gymrec-record BreakoutNoFrameskip-v4 --agent random --headless --episodes 3 --seed 7

run as a user runs it (a fresh process, its own data folder and endpoint), `--repeats` times
(median and range, hyperfine-style), once with no writer running (the recorder starts one) and
once with a writer already answering. The agent is a file agent that plays randomly and notes
the wall time of its first and last `act`, so the script sees, from outside:

- before: command start → first frame stepped (imports, finding or starting the writer, the
  worker process, making the env, its first reset);
- after: last frame stepped → the command's exit (the last batch made durable, the summary,
  process exit); an upper bound of "last frame durable → exit";
- after durable: the moment the recording was on disk (the last shard sealed into `data/`:
  the manifest's mtime) → the command's exit: what the user waits once the data is durable
  (the writer's session end: its dataset card, statistics and preview; the final ack; the
  recorder's summary and exit);
- overhead: before + after, what the user waits beyond playing; overhead (durable): before +
  after durable, what the user waits beyond the recording itself (playing, then encoding and
  writing what the game made faster than the writer could take it);
- CPU: user + system seconds of the recorder and its workers (not of a writer it started), a
  figure that a busy machine inflates far less than wall time.

    uv run python scripts/bench_cold_start.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_common import Writer, free_endpoint  # noqa: E402

ENV_ID = "BreakoutNoFrameskip-v4"
COMMAND = ["--agent", "random", "--headless", "--episodes", "3", "--seed", "7"]

# A random agent (the action space's own seeded sampler, as `--agent random`) that notes the wall
# time of its first act (a file of its own) and of its latest one (overwritten in place, one
# pwrite a step: the worker process ends without running finalisers).
AGENT = '''
import os
import time


class TimedRandom:
    def __init__(self, action_space):
        self.space = action_space
        self.first = None
        base = os.environ["BENCH_ACT_TIMES"]
        self.last_fd = os.open(base + ".last", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

    def reset(self, seed):
        self.space.seed(seed)

    def act(self, observation):
        now = time.time()
        if self.first is None:
            self.first = now
            with open(os.environ["BENCH_ACT_TIMES"] + ".first", "w") as f:
                f.write(repr(now))
        os.pwrite(self.last_fd, repr(now).ljust(32).encode(), 0)
        return self.space.sample()
'''


def one_run(workdir: Path, agent: Path, endpoint: str, data_dir: Path) -> dict[str, float]:
    """Run the command once; returns its before/after/overhead/wall seconds."""
    times = workdir / f"acts-{time.monotonic_ns()}.txt"
    env = {**os.environ, "BENCH_ACT_TIMES": str(times), "GYMREC_ENDPOINT": endpoint,
           "GYMREC_DATA_DIR": str(data_dir), "SDL_VIDEODRIVER": "dummy"}
    cmd = [sys.executable, "-m", "recorder.cli", ENV_ID,
           *[f"{agent}:TimedRandom" if a == "random" else a for a in COMMAND]]
    began = time.time()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)  # its CPU time, and its workers'
        ended = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"the command failed ({proc.returncode}):\n{log.read().decode()}")
    first = float(Path(f"{times}.first").read_text())
    last = float(Path(f"{times}.last").read_text())
    durable = durable_at(data_dir)
    return {"before_s": first - began, "after_s": ended - last,
            "overhead_s": (first - began) + (ended - last), "wall_s": ended - began,
            "after_durable_s": ended - durable,
            "overhead_durable_s": (first - began) + (ended - durable),
            "playing_s": last - first, "cpu_s": usage.ru_utime + usage.ru_stime}


def durable_at(data_dir: Path) -> float:
    """When the latest recording was on disk: the newest manifest (its last shard's seal, the
    first thing the writer does with a SessionEnd; the card comes after)."""
    return max(path.stat().st_mtime for path in data_dir.glob("*/.meta/manifest.json"))


def wait_gone(endpoint: str, timeout: float = 30) -> float:
    """Seconds until nothing listens at `endpoint` (the auto-started writer exited by itself).
    Not probed: a probe counts as activity and would keep it there."""
    from recorder.delivery.local_writer import nothing_listens

    began = time.monotonic()
    while not nothing_listens(endpoint):
        if time.monotonic() - began > timeout:
            raise SystemExit(f"the auto-started writer at {endpoint} did not exit by itself")
        time.sleep(0.1)
    return time.monotonic() - began


def summary(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {k: {"median": statistics.median(r[k] for r in runs),
                "min": min(r[k] for r in runs), "max": max(r[k] for r in runs)}
            for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = {}
    # A writer that lingers may still be writing its last files when the folder goes.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        agent = work / "timed_agent.py"
        agent.write_text(AGENT)
        # Warm the bytecode caches once, as any second use of an installed gymrec finds them.
        one_run(work, agent, free_endpoint(), work / "warm")
        cold, lingered = [], []
        for i in range(args.repeats):
            endpoint = free_endpoint()  # nothing answers here: the recorder starts a writer
            cold.append(one_run(work, agent, endpoint, work / f"cold{i}"))
            lingered.append(wait_gone(endpoint))
        with Writer(work / "running") as writer:
            warm = [one_run(work, agent, writer.endpoint, writer.data_dir)
                    for _ in range(args.repeats)]
    results = {"no_writer": summary(cold), "writer_running": summary(warm),
               "writer_lingered_s": {"median": statistics.median(lingered),
                                     "min": min(lingered), "max": max(lingered)}}
    for name in ("no_writer", "writer_running"):
        r = results[name]
        print(f"{name:15s} before first frame {r['before_s']['median']:.2f} s "
              f"[{r['before_s']['min']:.2f}-{r['before_s']['max']:.2f}]  after last frame "
              f"{r['after_s']['median']:.2f} s [{r['after_s']['min']:.2f}-"
              f"{r['after_s']['max']:.2f}]  overhead {r['overhead_s']['median']:.2f} s  "
              f"after durable {r['after_durable_s']['median']:.2f} s "
              f"[{r['after_durable_s']['min']:.2f}-{r['after_durable_s']['max']:.2f}]  "
              f"overhead beyond the recording {r['overhead_durable_s']['median']:.2f} s  "
              f"wall {r['wall_s']['median']:.2f} s (playing {r['playing_s']['median']:.2f} s; "
              f"CPU of the recorder and its workers {r['cpu_s']['median']:.2f} s)")
    print(f"the auto-started writer exited by itself {results['writer_lingered_s']['median']:.1f}"
          " s after the command returned (median)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
