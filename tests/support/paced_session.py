"""A recorder process for fault tests: the real headless loop in `realtime` mode (paced at
--fps, never waiting for the writer), printing its progress as JSON lines on stdout.

    python -m tests.support.paced_session ENDPOINT DATA_DIR --fps 200 --episodes 10 [--buffer-mb N]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from recorder.agents import agent_source
from recorder.envs import resolve_env
from recorder.headless.loop import RecordSettings, record_worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--env", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--fps", type=float, default=200)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--buffer-mb", type=float, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain-timeout", type=float, default=60)
    parser.add_argument("--record", default="", help="extras, comma-separated (ram)")
    args = parser.parse_args()
    settings = RecordSettings(
        choice=resolve_env(args.env, record=tuple(filter(None, args.record.split(",")))),
        endpoint=args.endpoint, data_dir=args.data_dir,
        episodes=args.episodes, max_steps=args.max_steps, base_seed=args.seed,
        agent=agent_source("random"),
        codec="jpeg", quality=95, fps=args.fps, buffer_bytes=int(args.buffer_mb * 2**20),
        drain_timeout=args.drain_timeout, collector="fault-test", realtime=True,
    )

    def report(progress) -> None:
        print(json.dumps(asdict(progress)), flush=True)

    record_worker(settings, 0, report)
    sys.exit(0)


if __name__ == "__main__":
    main()
