"""`gymrec-writer export ENV --format minari|lerobot`: convert a dataset (local or a Hub repo),
streaming shard by shard, into a staged folder renamed into place at the end."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from shared.errors import UsageError
from writer.export.episodes import episodes
from writer.export.reading import HubDataset, LocalDataset
from writer.export.staging import staged

FORMATS = ("minari", "lerobot")


@dataclass(frozen=True, kw_only=True)
class ExportSettings:
    dataset: LocalDataset | HubDataset
    format: str  # one of FORMATS
    out: Path | None  # Minari: the datasets root; LeRobot: the dataset folder
    name: str  # the env's folder name (`ALE_Pong-v5`), for default names
    dataset_id: str | None = None  # Minari id (default gymrec/<env>-v0)


class _Progress:
    """A line on stderr per shard, at most one a second (the first and last always)."""

    def __init__(self) -> None:
        self.last = 0.0
        self.episodes = self.steps = 0

    def __call__(self, done: int, total: int, name: str) -> None:
        now = time.monotonic()
        if done in (0, total) or now - self.last >= 1.0:
            self.last = now
            print(f"gymrec-writer: export: shard {done}/{total}, {self.episodes} episodes, "
                  f"{self.steps} steps written", file=sys.stderr, flush=True)


def _common_start(sessions: list[dict]) -> dict:
    """The first session's start; UsageError if sessions differ in what the export's schema
    depends on."""
    if not sessions:
        raise UsageError("the dataset has no sessions")
    first = sessions[0]["start"]
    for key in ("env_id", "frame_shape", "action_space"):
        if any(s["start"].get(key) != first.get(key) for s in sessions[1:]):
            raise UsageError(f"sessions differ in {key}: they cannot be one exported dataset")
    return first


def _discarded(sessions: list[dict]) -> int:
    return sum(1 for s in sessions for e in s["episodes"] if e.get("outcome") == "discarded")


def run_export(settings: ExportSettings) -> str:
    """Export; returns the closing line (episodes, steps, where)."""
    sessions = settings.dataset.sessions()
    start = _common_start(sessions)
    progress = _Progress()
    if settings.format == "minari":
        return _export_minari(settings, sessions, start, progress)
    if settings.format == "lerobot":
        return _export_lerobot(settings, sessions, start, progress)
    raise UsageError(f"unknown export format {settings.format!r} (one of {', '.join(FORMATS)})")


def _closing(kind: str, counts, discarded: int, where: Path, how: str = "") -> str:
    """The closing line: what was converted, where, what was left out or cut, how to open it."""
    notes = [f"{counts.cut} cut by a gap (truncated there)" if counts.cut else "",
             f"{counts.skipped} too short to export" if counts.skipped else "",
             f"{discarded} discarded left out" if discarded else ""]
    extra = "; ".join(n for n in notes if n)
    return (f"exported {counts.episodes} episodes, {counts.steps} steps to {where} ({kind})"
            + (f"; episodes: {extra}" if extra else "") + (f"; {how}" if how else ""))


def _export_minari(settings: ExportSettings, sessions: list[dict], start: dict,
                   progress: _Progress) -> str:
    from writer.export import minari as mx

    minari = mx.require_minari()
    dataset_id = mx.check_dataset_id(settings.dataset_id or mx.default_dataset_id(settings.name))
    root = settings.out or minari.storage.get_dataset_path()
    target = Path(root) / dataset_id
    with staged(target) as folder:
        # The typed info goes into Minari's infos when every session recorded the same columns.
        info_columns = start.get("info_columns") or {}
        if any((s["start"].get("info_columns") or {}) != info_columns for s in sessions):
            info_columns = {}
        writer = mx.MinariWriter(folder, start, dataset_id, info_columns)
        for episode in episodes(settings.dataset, progress, info=bool(info_columns)):
            writer.add(episode)
            progress.episodes, progress.steps = writer.counts.episodes, writer.counts.steps
        writer.finish({s["start"].get("collector", "?") for s in sessions},
                      f"gymrec recording of {start['env_id']} ({settings.dataset.where}): "
                      f"{len(sessions)} session(s); episodes cut by a gap end truncated there.")
    how = f"open it with minari.load_dataset({dataset_id!r})"
    how += f" and MINARI_DATASETS_PATH={root}" if settings.out else ""
    return _closing("Minari", writer.counts, _discarded(sessions), target, how)


def _export_lerobot(settings: ExportSettings, sessions: list[dict], start: dict,
                    progress: _Progress) -> str:
    from writer.export import lerobot as lx

    target = settings.out or Path.cwd() / f"{settings.name}-lerobot"
    with staged(Path(target)) as folder:
        writer = lx.LeRobotWriter(folder, sessions, start)
        for episode in episodes(settings.dataset, progress):
            writer.add(episode)
            progress.episodes, progress.steps = writer.counts.episodes, writer.counts.steps
        writer.finish()
    return _closing("LeRobot v3.0", writer.counts, _discarded(sessions), target)
