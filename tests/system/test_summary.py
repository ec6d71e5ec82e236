"""`gymrec-writer summary`: its numbers against the dataset as `datasets` loads it, its picture,
and the same statistics in the local card and `.meta/info.json`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict

import datasets
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.support.hub_data import ENV_ID, record_session
from tests.support.processes import ROOT


def summary_cmd(data_dir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "writer.cli", "summary", "BreakoutNoFrameskip",  # no -v4
            "--data-dir", str(data_dir), *extra]


def test_summary_numbers_are_the_datasets(data_dir):
    record_session(data_dir, episodes=3, steps=25, seed=41)
    layout = record_session(data_dir, episodes=2, steps=10, seed=42)
    result = subprocess.run(summary_cmd(data_dir, "--json"), cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)

    ds = datasets.load_dataset(str(layout.root), split="train").remove_columns("image")
    returns: dict[str, float] = defaultdict(float)
    lengths: Counter = Counter()
    actions: Counter = Counter()
    for row in ds:
        if not row["is_last"]:
            returns[row["episode_id"]] += row["reward"]
            lengths[row["episode_id"]] += 1
            actions[["NOOP", "FIRE", "RIGHT", "LEFT"][row["action"]]] += 1
    assert (stats["sessions"], stats["episodes"]) == (2, 5)
    assert (stats["frames"], stats["rows"]) == (95, 100) == (sum(lengths.values()), len(ds))
    assert stats["hours"] == pytest.approx(95 / 15 / 3600)  # fps 15 in both sessions
    assert stats["returns"]["mean"] == pytest.approx(sum(returns.values()) / 5)
    assert stats["returns"]["max"] == max(returns.values())
    assert (stats["lengths"]["min"], stats["lengths"]["max"]) == (10, 25)
    assert stats["lengths"]["quantiles"]["p50"] == 25
    assert stats["outcomes"] == {"truncated": 5}
    assert stats["actions"] == dict(actions)
    assert stats["collectors"] == {"tester@host": 2} and stats["gaps"] == 0

    picture = layout.root / ".meta" / "summary.png"
    assert stats["picture"] == str(picture)
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width >= 960
    info = json.loads((layout.root / ".meta" / "info.json").read_text())
    assert info["statistics"] == {k: v for k, v in stats.items() if k != "picture"}
    assert info["license"] == "other"
    card = (layout.root / "README.md").read_text()
    assert "## Statistics" in card and "![A recorded episode" in card
    assert (layout.root / ".meta" / "preview.webp").read_bytes()[8:12] == b"WEBP"


def test_summary_as_text_and_its_errors(data_dir, tmp_path):
    """The same command in this process (quicker): text mode, --picture, a missing dataset."""
    from writer.cli import main

    record_session(data_dir, episodes=1, steps=5, seed=43)
    picture = tmp_path / "pics" / "b.png"
    result = CliRunner().invoke(main, summary_cmd(data_dir, "--picture", str(picture))[3:])
    assert result.exit_code == 0, result.output
    assert f"picture: {picture}" in result.stdout and picture.is_file()
    assert "episodes 1, frames 5" in result.stdout
    assert "read 1/1 shards" in result.stderr  # progress

    missing = CliRunner().invoke(main, summary_cmd(tmp_path / "nothing")[3:])
    assert missing.exit_code == 2
    assert missing.stderr.count("\n") == 1 and "no recording of" in missing.stderr
    assert ENV_ID not in missing.stdout
