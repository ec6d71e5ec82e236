"""Two machines (two data folders) publishing to one Hub repo: every shard lands exactly once,
and the card and meta/info.json describe the repo as it is (all its sessions), whoever
committed last. Real `gymrec-writer push` processes against the local Hub server."""

from __future__ import annotations

import io
import json
import re
import subprocess

import huggingface_hub.constants
import pyarrow.parquet as pq
import pytest

from shared.layout import DatasetLayout
from tests.support.hub_cli import hub_env, push_cmd
from tests.support.hub_data import ENV_ID, record_session
from tests.support.hub_server import HubServer
from tests.support.processes import ROOT
from writer.hub.client import HubClient
from writer.hub.upload import parquet_path, publish
from writer.store.shards import load_manifest

REPO = f"me/GymnasiumRecording__{ENV_ID}"


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubServer() as server:
        yield server


def _local(layouts: list[DatasetLayout]) -> tuple[set[str], int, set[str]]:
    shards = [s for layout in layouts for s in load_manifest(layout)["shards"]]
    return ({parquet_path(s["file"]) for s in shards}, sum(s["rows"] for s in shards),
            {s["session_id"] for s in shards})


def assert_repo_describes(hub: HubServer, layouts: list[DatasetLayout]) -> None:
    """Each local shard committed once, and card + info count every session of the repo."""
    files, rows, sessions = _local(layouts)
    committed = [p for p in hub.committed_paths(REPO) if p.startswith("data/")]
    assert sorted(committed) == sorted(files)  # each once, none other
    repo = hub.files(REPO)
    seqs = [(sid, seq) for p in files
            for sid, seq in zip(*pq.read_table(io.BytesIO(repo[p]),
                                               columns=["session_id", "seq"]).to_pydict()
                                .values(), strict=True)]
    assert len(seqs) == len(set(seqs)) == rows
    info = json.loads(repo["meta/info.json"])
    assert set(info["sessions"]) == sessions
    assert info["published"]["rows"] == rows and info["published"]["shards"] == len(files)
    card = repo["README.md"].decode()
    counts = re.search(r"\n\| (\d+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", card)
    assert counts is not None, card
    assert int(counts[1]) == len(sessions) and int(counts[4].replace(",", "")) == rows
    assert {p.removeprefix("meta/sessions/").removesuffix(".json") for p in repo
            if p.startswith("meta/sessions/")} == sessions


def test_a_second_folder_publishing_to_the_repo_counts_the_first(hub, tmp_path):
    first = record_session(tmp_path / "a", episodes=2, seed=31)
    second = record_session(tmp_path / "b", episodes=3, seed=32)
    publish(first, HubClient(hub.url, hub.token), REPO)
    publish(second, HubClient(hub.url, hub.token), REPO)
    assert_repo_describes(hub, [first, second])
    # The first folder records more and publishes again: its card still counts the other.
    record_session(tmp_path / "a", episodes=1, seed=33)
    publish(first, HubClient(hub.url, hub.token), REPO)
    assert_repo_describes(hub, [first, second])


def test_two_writers_pushing_at_once_both_land_once_with_a_true_card(hub, tmp_path):
    first = record_session(tmp_path / "a", episodes=3, seed=34)
    second = record_session(tmp_path / "b", episodes=2, seed=35)
    env = hub_env(hub, tmp_path / "hf")
    # The first push's commit is held (then dropped) while the second publishes in full:
    # the first then reads the repo again and commits on top of the second.
    held = hub.hang_next("commit")
    one = subprocess.Popen(push_cmd(tmp_path / "a"), env=env, cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert held.reached.wait(60), one.communicate(timeout=5)
    two = subprocess.run(push_cmd(tmp_path / "b"), env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert two.returncode == 0, two.stderr
    held.release.set()
    out, err = one.communicate(timeout=120)
    assert one.returncode == 0, err
    assert_repo_describes(hub, [first, second])

    # Both again at the same moment, each with a new session: no fault, any interleaving.
    record_session(tmp_path / "a", episodes=1, seed=36)
    record_session(tmp_path / "b", episodes=1, seed=37)
    both = [subprocess.Popen(push_cmd(tmp_path / d), env=env, cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for d in ("a", "b")]
    for proc in both:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert_repo_describes(hub, [first, second])
