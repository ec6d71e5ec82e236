"""`gymrec-replay --repo`: a real recording, published to the local Hub server by `gymrec-writer
push`, replays from the Hub bit-exactly; a tampered copy published to a second repo fails at
exactly the changed step; a missing, empty or unreachable repo, a failing download and the wrong
env id are one line each. The CLIs run as real processes against the local Hub server, each with
its Hugging Face cache under tmp_path; the source itself is also read in-process.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pyarrow as pa
import pytest

from recorder.envs import frame_of, make_env, resolve_env
from recorder.replay.sources.hub import BATCH_ROWS, open_hub_source
from recorder.replay.sources.local import LocalSource
from tests.support import hub_data
from tests.support.hub_cli import hub_env, push_cmd
from tests.support.hub_server import HubServer
from tests.support.processes import ROOT, WriterProcess, free_endpoint, run_records
from tests.support.replay_rows import edit_rows, failures, one_error_line, read_rows
from writer.store.durable import file_checksum

# VizDoom shows a changed action in the very next frame; Breakout only one frame later (the game
# reads the paddle after drawing), which replay rightly reports as the next step.
ENV_ID = "VizdoomBasic-v1"
REPO = f"me/GymnasiumRecording__{ENV_ID}"
TAMPERED = f"me/Tampered__{ENV_ID}"


def replay_repo(repo: str, env: dict, *extra: str, env_id: str = ENV_ID
                ) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "recorder.replay.cli", env_id, "--repo", repo, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def push(hub: HubServer, data_dir: Path, home: Path, repo: str) -> None:
    cmd = [sys.executable, "-m", "writer.cli", "push", ENV_ID, "--data-dir", str(data_dir),
           "--repo", repo]
    result = subprocess.run(cmd, cwd=ROOT, env=hub_env(hub, home, xet=False),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def shard_gets(hub: HubServer, repo: str) -> list[str]:
    return [e["path"] for e in hub.requests("resolve") if e["method"] == "GET"
            and e["repo"] == repo and e["path"].endswith(".parquet")]


@pytest.fixture(scope="module")
def hub():
    with HubServer(lfs=True) as server:  # parquet goes through LFS, as on the Hub (Xet off)
        yield server


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """Two sessions (2 episodes of up to 60 steps, then 1), one shard each, in a data dir
    nothing has pushed from (the tests copy it before pushing)."""
    base = tmp_path_factory.mktemp("hub-replay")
    endpoint = free_endpoint()
    writer = WriterProcess(endpoint, base / "data", base / "writer.log").start()
    try:
        results = run_records(*[(ENV_ID, endpoint, base / "data", "--episodes", episodes,
                                 "--max-steps", "60", "--seed", seed)
                                for episodes, seed in (("2", "11"), ("1", "12"))])  # at once
    finally:
        stopped = writer.stop()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert stopped == 0, (base / "writer.log").read_text()
    return base / "data"


def copy_of(recording: Path, folder: Path) -> Path:
    shutil.copytree(recording, folder, ignore=shutil.ignore_patterns(".writer.*", ".upload",
                                                                        "uploads.json"))
    return folder


@pytest.fixture(scope="module")
def published(hub, recording, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("published")
    push(hub, copy_of(recording, base / "data"), base / "hf", REPO)
    return base / "data"


def test_published_recording_replays_from_the_hub(hub, published, tmp_path):
    home = tmp_path / "hf"
    env = hub_env(hub, home, token=False)  # a public repo needs no token
    shards = sorted(p for p in hub.files(REPO) if p.startswith("data/"))
    assert len(shards) == 2

    result = replay_repo(REPO, env, "--diff-dir", str(tmp_path / "diffs"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.count("PASS ") == 3 and "verdict: PASS" in result.stdout
    assert "(3 passed)" in result.stdout
    # Both shards came once each, at the commit the replay started from, into HF_HOME.
    head = hub.commits(REPO)[-1].oid
    assert sorted(shard_gets(hub, REPO)) == [f"/datasets/{REPO}/resolve/{head}/{p}"
                                             for p in shards]
    assert len(list(home.rglob("*.parquet"))) == 2

    again = replay_repo(REPO, env, "--episode", read_rows(published / ENV_ID)[0]["episode_id"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("PASS ") == 1
    assert len(shard_gets(hub, REPO)) == 2  # the cached shards were read, not fetched again


def _frame_after(env, seed: int, actions: list, k: int) -> np.ndarray:
    """Reset with `seed`, play `actions[:k + 1]`; the frame after the last one."""
    env.reset(seed=seed)
    for action in actions[:k]:
        env.step(action)
    return frame_of(env.step(actions[k])[0], env).copy()


def _visible_change(seed: int, actions: list) -> tuple[int, int]:
    """A step k and an action other than actions[k] whose very next frame differs."""
    env = make_env(resolve_env(ENV_ID))
    try:
        for k in (min(25, len(actions) // 2), *range(1, len(actions))):
            recorded = _frame_after(env, seed, actions, k)
            for other in range(env.action_space.n):
                if other != actions[k] and not np.array_equal(
                        _frame_after(env, seed, [*actions[:k], other], k), recorded):
                    return k, other
    finally:
        env.close()
    pytest.fail("no step where another action changes the next frame")


def test_tampered_copy_fails_at_exactly_the_changed_step(hub, recording, tmp_path):
    data = copy_of(recording, tmp_path / "data")
    root = data / ENV_ID
    every = read_rows(root)
    rows = [r for r in every if r["session_id"] == every[-1]["session_id"]]  # the 2nd session
    target, seed = rows[0]["episode_id"], rows[0]["seed"]
    k, other = _visible_change(seed, [r["action"] for r in rows[:-1]])
    assert edit_rows(root, lambda r: r["episode_id"] == target and r["step"] == k, "action",
                     lambda _: other) == 1
    # The forger also fixes the manifest's checksums, or push would refuse the shards.
    manifest_path = root / ".meta" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for shard in manifest["shards"]:
        path = root / shard["file"]
        shard["xxh3_128"], shard["bytes"] = file_checksum(path), path.stat().st_size
    manifest_path.write_text(json.dumps(manifest))
    push(hub, data, tmp_path / "hf-push", TAMPERED)

    diffs = tmp_path / "diffs"
    result = replay_repo(TAMPERED, hub_env(hub, tmp_path / "hf"), "--diff-dir", str(diffs))
    assert result.returncode == 1, result.stdout + result.stderr
    found = failures(result.stdout)
    assert list(found) == [target], result.stdout  # the first session still passes
    fail = found[target]
    assert fail["step"] == k  # the changed action's own step, not k-1 or k+1
    assert fail["frame"] == k + 1 and "frame" in fail["fields"]
    assert fail["picture"] == diffs / f"{target}-step{k:06d}.png" and fail["picture"].exists()
    assert "verdict: FAIL: 1 of 3" in result.stdout


def test_hub_source_streams_the_shards_in_order_batch_by_batch(hub, tmp_path, monkeypatch):
    """The source itself, in-process with the real client: session files and rows as the local
    source reads them, batch by batch, each shard fetched once (the next one in the background)."""
    data_dir = tmp_path / "data"
    layout = hub_data.record_session(data_dir, episodes=4, steps=30, shard_rows=20, seed=31)
    hub_data.record_session(data_dir, episodes=1, seed=32)
    repo = f"me/Synthetic__{hub_data.ENV_ID}"
    result = subprocess.run(push_cmd(data_dir, "--repo", repo), cwd=ROOT,
                            env=hub_env(hub, tmp_path / "hf-push", xet=False),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))

    source, local = open_hub_source(repo, hub.url, None), LocalSource(layout.root)
    assert source.where == f"{repo} on {hub.url}"
    # The Hub copy of a session file adds its published counts and its statistics.
    hub_only = {"published", "statistics"}
    assert [{k: v for k, v in s.items() if k not in hub_only} for s in source.sessions()] == \
        local.sessions()
    for session in local.sessions():
        sid = session["start"]["session"]
        refs, local_refs = source.shards(sid), local.shards(sid)
        assert [r.file for r in refs] == [r.file.replace(".arrow", ".parquet")
                                          for r in local_refs]
        for ref, local_ref in zip(refs, local_refs, strict=True):
            batches = list(source.batches(ref))
            assert max(b.num_rows for b in batches) <= BATCH_ROWS
            assert pa.Table.from_batches(batches).equals(
                pa.Table.from_batches(list(local.batches(local_ref))))
    gets = shard_gets(hub, repo)
    assert len(gets) == len(set(gets)) == 5  # 4 + 1 shards, each downloaded once


def _free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _create_empty_repo(hub: HubServer, name: str) -> None:
    request = urllib.request.Request(
        f"{hub.url}/api/repos/create", method="POST",
        data=json.dumps({"name": name, "type": "dataset"}).encode(),
        headers={"Authorization": f"Bearer {hub.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@pytest.mark.parametrize(("case", "code", "words"), [
    ("missing", 2, f"no dataset repo me/Nothing__{ENV_ID} on http://127.0.0.1:"),
    ("empty", 2, "has no meta/sessions/*.json"),
    ("wrong env", 2, f"holds recordings of {ENV_ID}, not PongNoFrameskip-v4"),
    ("bad id", 2, "'me/a/b' is not a Hub repo id"),
    ("unreachable", 7, "cannot reach http://127.0.0.1:"),
    ("download refused", 7, "HTTP 403"),
])
def test_errors_are_one_line(hub, published, tmp_path, case, code, words):
    env = hub_env(hub, tmp_path / "hf", token=False)
    repo, env_id = REPO, ENV_ID
    if case == "missing":
        repo = f"me/Nothing__{ENV_ID}"
    elif case == "empty":
        repo = "me/Empty"
        _create_empty_repo(hub, "Empty")
    elif case == "wrong env":
        env_id = "PongNoFrameskip-v4"
    elif case == "bad id":
        repo = "me/a/b"
    elif case == "unreachable":
        env["HF_ENDPOINT"] = _free_url()
    elif case == "download refused":
        hub.fail_next("resolve", 403)
    result = replay_repo(repo, env, env_id=env_id)
    assert result.returncode == code, result.stdout + result.stderr
    line = one_error_line(result)
    assert words in line, line
    assert "missing" != case or "HF_TOKEN" in line  # no token given: it may be private
