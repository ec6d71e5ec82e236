"""Dataset size per 1,000 frames, per platform and codec (JPEG q95 4:4:4, lossless PNG).

For each platform and codec a real writer process records a few thousand frames from the random
agent (`record_worker`, seeded episodes: both codecs see the same frames), then the sealed Arrow
shards are measured: bytes on disk, of which image bytes, and the size of the zstd Parquet the
Hub upload makes of them (`writer.hub.upload.stage_parquet`, the very function and settings),
and what the columns of issue 14 add to that: `frame_hash`, `info` and `info_json` (their Arrow
buffers, and those columns alone as zstd Parquet).

    uv run python scripts/bench_size.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ENVS, Writer, markdown_table  # noqa: E402

from recorder.agents import agent_source  # noqa: E402
from recorder.envs import resolve_env  # noqa: E402
from recorder.headless.loop import RecordSettings, record_worker  # noqa: E402
from shared.config import dataset_dir  # noqa: E402
from shared.layout import DatasetLayout  # noqa: E402
from writer.hub.upload import stage_parquet  # noqa: E402
from writer.store.shards import load_manifest  # noqa: E402

CODECS = ["jpeg", "png"]
SCHEDULE = {"atari": (4, 1000), "retro": (3, 1000), "vizdoom": (12, 300)}  # episodes, max steps
MB = 1e6
KB = 1e3
ADDED = ("frame_hash", "info", "info_json")  # the columns issue 14 added


def record(platform: str, codec: str, episodes: int, max_steps: int, workdir: Path) -> Path:
    """Record into a writer of its own; returns the dataset folder (the writer stopped)."""
    env_id = ENVS[platform]
    with Writer(workdir / f"{platform}-{codec}") as writer:
        settings = RecordSettings(
            choice=resolve_env(env_id), endpoint=writer.endpoint, data_dir=writer.data_dir,
            episodes=episodes, max_steps=max_steps, base_seed=5, agent=agent_source("random"),
            codec=codec,
            quality=95, fps=60, buffer_bytes=256 << 20, drain_timeout=300,
            collector="bench-size")
        progress = record_worker(settings, 0, lambda p: None)
    if progress.steps_durable != progress.steps or progress.steps_dropped:
        raise SystemExit(f"{env_id} {codec}: the writer did not confirm every step: {progress}")
    return dataset_dir(writer.data_dir, env_id)


def measure(root: Path) -> dict:
    layout = DatasetLayout(root)
    shards = load_manifest(layout)["shards"]
    rows = arrow = images = parquet = added_arrow = added_parquet = 0
    for shard in shards:
        with pa.memory_map(str(root / shard["file"])) as stream:
            table = ipc.open_stream(stream).read_all()
        rows += table.num_rows
        arrow += (root / shard["file"]).stat().st_size
        images += pc.sum(pc.binary_length(table.column("image").combine_chunks()
                                          .field("bytes"))).as_py()
        path, _ = stage_parquet(layout, shard)
        parquet += path.stat().st_size
        added = table.select([c for c in ADDED if c in table.column_names])
        added_arrow += added.nbytes
        buffer = io.BytesIO()
        pq.write_table(added, buffer, compression="zstd")
        added_parquet += len(buffer.getvalue())
    return {"rows": rows, "shards": len(shards), "arrow_bytes": arrow, "image_bytes": images,
            "parquet_bytes": parquet, "added_arrow_bytes": added_arrow,
            "added_parquet_bytes": added_parquet}


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        per = 1000 / r["rows"]
        rows.append([r["env_id"], r["codec"], f"{r['rows']:,}",
                     *(f"{r[k] * per / MB:.2f}"
                       for k in ("arrow_bytes", "image_bytes", "parquet_bytes")),
                     f"{r['arrow_bytes'] / r['parquet_bytes']:.1f}×",
                     *(f"{r[k] * per / KB:.1f}"
                       for k in ("added_arrow_bytes", "added_parquet_bytes"))])
    return markdown_table(["env", "codec", "frames", "Arrow shards, MB / 1k frames",
                           "of which image bytes, MB", "Parquet zstd, MB / 1k frames",
                           "Arrow / Parquet", "hash + info columns, KB / 1k frames (Arrow)",
                           "same, Parquet zstd"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred Atari frames (a smoke test; used by the tests)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    platforms = ["atari"] if args.quick else list(SCHEDULE)
    results = []
    with tempfile.TemporaryDirectory(prefix="gymrec-bench-size-") as tmp, \
            Progress(transient=True) as bar:
        task = bar.add_task("bench_size", total=len(platforms) * len(CODECS))
        for platform in platforms:
            episodes, max_steps = (2, 150) if args.quick else SCHEDULE[platform]
            for codec in CODECS:
                bar.update(task, description=f"{platform} {codec}")
                root = record(platform, codec, episodes, max_steps, Path(tmp))
                results.append({"env_id": ENVS[platform], "codec": codec, **measure(root)})
                bar.advance(task)
    print("Dataset size per 1,000 frames (MB = 10^6 bytes; a frame is one row, final "
          "observations included)\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
