"""`gymrec-writer summary ENV`: the statistics of a dataset as text, and a picture written beside
it (returns per episode, a histogram of lengths, a strip of frames)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from writer.export.reading import HubDataset, LocalDataset
from writer.summary.collect import collect_stats, first_episode_frames
from writer.summary.pictures import STRIP_FRAMES, summary_sheet
from writer.summary.stats import stats_lines

PICTURE_NAME = "summary.png"


@dataclass(frozen=True, kw_only=True)
class SummarySettings:
    dataset: LocalDataset | HubDataset
    title: str  # the env id or repo
    picture: Path  # where the PNG goes
    as_json: bool = False


def default_picture(dataset: LocalDataset | HubDataset) -> Path:
    """Beside the data: `<dataset>/.meta/summary.png` (hidden from `load_dataset`), or
    `./<repo name>.summary.png` for a Hub repo."""
    if isinstance(dataset, LocalDataset):
        return dataset.layout.meta / PICTURE_NAME
    return Path.cwd() / f"{dataset.repo_id.split('/')[-1]}.{PICTURE_NAME}"


def _progress(done: int, total: int, name: str) -> None:
    if total and (done == total or done % 10 == 0):
        print(f"gymrec-writer: read {done}/{total} shards", file=sys.stderr, flush=True)


def run_summary(settings: SummarySettings) -> Path:
    """Print the statistics (text or JSON) and write the picture; returns its path."""
    stats, sessions = collect_stats(settings.dataset, _progress)
    frames = first_episode_frames(settings.dataset, sessions, STRIP_FRAMES)
    picture = summary_sheet(f"{settings.title}: {stats.episodes} episodes, "
                            f"{stats.frames:,} frames, {stats.hours:.2f} h",
                            stats.episode_returns, stats.episode_lengths, frames)
    settings.picture.parent.mkdir(parents=True, exist_ok=True)
    tmp = settings.picture.with_name(settings.picture.name + ".tmp")
    tmp.write_bytes(picture)
    os.replace(tmp, settings.picture)
    if settings.as_json:
        print(json.dumps({**stats.to_json(), "picture": str(settings.picture)}, indent=1))
    else:
        print(f"{settings.title} ({settings.dataset.where})")
        for line in stats_lines(stats):
            print(f"  {line}")
        print(f"picture: {settings.picture}")
    return settings.picture
