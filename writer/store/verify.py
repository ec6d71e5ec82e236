"""Checking sealed shards against the checksums in the manifest (Arrow has none of its own, and
most flipped bits still read back as plausible data), and moving bad ones out of the dataset."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import dataset_dir_name
from shared.errors import UsageError
from shared.layout import DatasetLayout
from writer.store.durable import checksum_matches, write_json_atomic
from writer.store.shards import load_manifest


@dataclass(frozen=True)
class ShardProblem:
    file: str
    kind: str  # "checksum mismatch", "missing", "not in manifest"
    rows: int


@dataclass
class VerifyReport:
    shards: int = 0
    rows: int = 0
    problems: list[ShardProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_dataset(data_dir: Path, env_id: str) -> DatasetLayout:
    """The dataset of `env_id` under `data_dir`, the id resolved as `gymrec-record` does for
    the datasets present: exact, or without its version suffix (`Airstriker-Genesis` →
    `Airstriker-Genesis-v0`). Else UsageError naming the datasets there."""
    data_dir = Path(data_dir).expanduser()
    name = dataset_dir_name(env_id)
    present = sorted(p.name for p in data_dir.iterdir()
                     if DatasetLayout(p).manifest.is_file()) if data_dir.is_dir() else []
    if name in present:
        return DatasetLayout(data_dir / name)
    versioned = [n for n in present if re.fullmatch(re.escape(name) + r"-v[0-9]+", n)]
    if len(versioned) == 1:
        return DatasetLayout(data_dir / versioned[0])
    if versioned:
        raise UsageError(f"{env_id} could be {' or '.join(versioned)}: give the full id")
    close = difflib.get_close_matches(name, present, n=3, cutoff=0.5)
    hint = (f"; did you mean {', '.join(close)}?" if close
            else f" (datasets there: {', '.join(present)})" if present else "")
    raise UsageError(f"no recording of {env_id} in {data_dir}{hint}")


def verify_dataset(layout: DatasetLayout) -> VerifyReport:
    """Hash every shard in `data/` and compare with the manifest."""
    report = VerifyReport()
    listed = {s["file"]: s for s in load_manifest(layout)["shards"]}
    for file, entry in sorted(listed.items()):
        path = layout.root / file
        report.shards += 1
        report.rows += entry["rows"]
        if not path.exists():
            report.problems.append(ShardProblem(file, "missing", entry["rows"]))
        elif path.stat().st_size != entry["bytes"] or not checksum_matches(path, entry):
            report.problems.append(ShardProblem(file, "checksum mismatch", entry["rows"]))
    if layout.data.is_dir():
        for path in layout.shards_of(layout.data):
            if f"data/{path.name}" not in listed:
                report.problems.append(ShardProblem(f"data/{path.name}", "not in manifest", 0))
    return report


def quarantine(layout: DatasetLayout, problems: list[ShardProblem]) -> None:
    """Move corrupt shards to `.corrupt/` (kept for forensics, never loaded) and drop them from
    the manifest, so `load_dataset` serves only data that matches its checksum."""
    bad = {p.file for p in problems if p.kind == "checksum mismatch"}
    if not bad:
        return
    corrupt = layout.root / ".corrupt"
    corrupt.mkdir(exist_ok=True)
    for file in bad:
        os.replace(layout.root / file, corrupt / os.path.basename(file))
    manifest = load_manifest(layout)
    manifest["shards"] = [s for s in manifest["shards"] if s["file"] not in bad]
    manifest.setdefault("quarantined", []).extend(sorted(bad))
    write_json_atomic(layout.manifest, manifest)
