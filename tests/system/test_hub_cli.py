"""`gymrec-writer push` and `gymrec-writer --push` as real processes against the local Hub
server: load_dataset (also streaming) returns exactly the local rows, a push killed before or
after its commit resumes with nothing sent twice, and no token is one clear line."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from shared.layout import DatasetLayout
from tests.support.hub_cli import hub_env, push_cmd
from tests.support.hub_data import ENV_ID, record_session
from tests.support.hub_server import HubServer
from tests.support.processes import ROOT, run_record
from writer.hub.upload import load_journal, parquet_path
from writer.store.shards import load_manifest
from writer.summary.card_parts import PREVIEW_NAME

REPO = f"me/GymnasiumRecording__{ENV_ID}"

# Rows as load_dataset gives them, regular and streaming, with a digest of each decoded frame.
_LOAD = r"""
import hashlib, json, sys
import datasets
out = {}
for streaming in (False, True):
    ds = datasets.load_dataset(sys.argv[1], split="train", streaming=streaming)
    out[str(streaming)] = [
        [r["session_id"], r["seq"], r["episode_id"], r["step"], r["action"], r["is_last"],
         hashlib.sha1(r["image"].tobytes()).hexdigest()] for r in ds]
print(json.dumps(out))
"""


def local_rows(folder: Path) -> list[list]:
    ds = datasets.load_dataset(str(folder), split="train")
    return [[r["session_id"], r["seq"], r["episode_id"], r["step"], r["action"], r["is_last"],
             hashlib.sha1(r["image"].tobytes()).hexdigest()] for r in ds]


def hub_rows(hub: HubServer, home: Path) -> dict[str, list]:
    result = subprocess.run([sys.executable, "-c", _LOAD, REPO], env=hub_env(hub, home),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def assert_each_shard_once(hub: HubServer, layout: DatasetLayout) -> None:
    local = {parquet_path(s["file"]) for s in load_manifest(layout)["shards"]}
    committed = [p for p in hub.committed_paths(REPO) if p.startswith("data/")]
    assert sorted(committed) == sorted(local)
    seqs = [seq for p, data in hub.files(REPO).items() if p.startswith("data/")
            for seq in pq.read_table(io.BytesIO(data), columns=["seq"])["seq"].to_pylist()]
    assert len(seqs) == len(set(seqs)) == sum(s["rows"] for s in load_manifest(layout)["shards"])


def shard_puts(hub: HubServer, layout: DatasetLayout) -> list[dict]:
    """LFS uploads other than the card's preview picture (an LFS file too)."""
    preview = layout.meta / PREVIEW_NAME
    skip = hashlib.sha256(preview.read_bytes()).hexdigest() if preview.exists() else None
    return [e for e in hub.requests("lfs-put") if not e["path"].endswith(f"/{skip}")]


def push_killed_at_commit(hub: HubServer, env: dict, data_dir: Path, applied: bool) -> None:
    """Run a push and SIGKILL it while the server holds its commit request (applied or not)."""
    held = hub.hang_next("commit", apply=applied)
    proc = subprocess.Popen(push_cmd(data_dir), env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert held.reached.wait(60), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    held.release.set()


def test_push_then_load_dataset_gives_exactly_the_local_rows(tmp_path, data_dir):
    layout = record_session(data_dir, episodes=3, seed=21)
    record_session(data_dir, episodes=2, seed=22)
    with HubServer() as hub:
        result = subprocess.run(push_cmd(data_dir), env=hub_env(hub, tmp_path / "hf"), cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "published 5 shard(s), 155 rows" in result.stdout
        assert hub.token not in result.stdout + result.stderr
        loaded = hub_rows(hub, tmp_path / "hf")
    local = local_rows(layout.root)
    assert len(local) == 155
    assert sorted(loaded["False"]) == sorted(local)
    assert sorted(loaded["True"]) == sorted(local)


def test_push_killed_before_its_commit_resumes_without_resending(tmp_path, data_dir):
    layout = record_session(data_dir, episodes=3, seed=23)
    with HubServer(lfs=True) as hub:
        env = hub_env(hub, tmp_path / "hf", xet=False)
        push_killed_at_commit(hub, env, data_dir, applied=False)  # after the blob uploads
        assert len(shard_puts(hub, layout)) == 3
        assert not any(p.startswith("data/") for p in hub.files(REPO))
        assert (layout.root / ".upload").is_dir()  # staged Parquet kept for the next run

        result = subprocess.run(push_cmd(data_dir), env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert len(shard_puts(hub, layout)) == 3  # the Hub had the blobs: none sent again
        assert_each_shard_once(hub, layout)
        assert not any((layout.root / ".upload").iterdir())


def test_push_killed_after_its_commit_applied_records_it_without_resending(tmp_path, data_dir):
    layout = record_session(data_dir, episodes=3, seed=24)
    with HubServer() as hub:
        env = hub_env(hub, tmp_path / "hf")
        push_killed_at_commit(hub, env, data_dir, applied=True)  # the answer never arrives
        assert not load_journal(layout)["repos"].get(REPO, {}).get("shards")

        result = subprocess.run(push_cmd(data_dir), env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "3 shard(s) were already there" in result.stdout
        assert [e.get("applied") for e in hub.requests("commit")] == [True]
        assert len(load_journal(layout)["repos"][REPO]["shards"]) == 3
        assert_each_shard_once(hub, layout)


def test_no_token_is_one_clear_line_and_recording_goes_on(tmp_path, data_dir, endpoint):
    from recorder.delivery.link import probe_writer

    record_session(data_dir, episodes=1, seed=25)
    with HubServer() as hub:
        env = hub_env(hub, tmp_path / "hf", token=False)
        result = subprocess.run(push_cmd(data_dir), env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 7
        assert result.stderr.strip().splitlines() == [
            "gymrec-writer: no Hugging Face token: set HF_TOKEN, put it in a .env file (see "
            ".env.example) or run `hf auth login`"]
        assert hub.log == []

        # The daemon says so once and records locally.
        log = tmp_path / "writer.log"
        with open(log, "wb") as out:
            writer = subprocess.Popen(
                [sys.executable, "-m", "writer.cli", "--push", "--endpoint", endpoint,
                 "--data-dir", str(data_dir)], env=env, cwd=tmp_path, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while probe_writer(endpoint, 0.3) is None:
                assert writer.poll() is None and time.monotonic() < deadline, log.read_text()
        finally:
            writer.send_signal(signal.SIGTERM)
            writer.wait(30)
        assert "--push: no Hugging Face token" in log.read_text() and writer.returncode == 0

        # A token in .env (in the folder it runs from) is found.
        (tmp_path / ".env").write_text(f"# test\nHF_TOKEN='{hub.token}'\n")
        result = subprocess.run(push_cmd(data_dir), env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert hub.token not in result.stdout + result.stderr


def test_writer_push_publishes_a_real_recording(writer_factory, endpoint, data_dir, tmp_path,
                                                monkeypatch):
    with HubServer() as hub:
        for key, value in hub_env(hub, tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        writer = writer_factory("--push", "--push-interval", "0", "--shard-rows", "100").start()
        result = run_record(ENV_ID, endpoint, data_dir, "--episodes", "3", "--max-steps", "120",
                            "--seed", "5")
        assert result.returncode == 0, result.stderr
        layout = DatasetLayout(data_dir / ENV_ID)
        local = {parquet_path(s["file"]) for s in load_manifest(layout)["shards"]}
        assert len(local) == 3

        def published() -> bool:
            files = hub.files(REPO) if REPO in hub.repos else {}
            sessions = [json.loads(b) for p, b in files.items() if p.startswith("meta/sessions/")]
            return local <= set(files) and [s["status"] for s in sessions] == ["ended"]

        deadline = time.monotonic() + 60
        while not published():
            assert time.monotonic() < deadline, writer.log.read_text()
            time.sleep(0.2)
        assert writer.stop() == 0
        assert hub.token not in writer.log.read_text()
        assert_each_shard_once(hub, layout)
        loaded = hub_rows(hub, tmp_path / "hf")
    local_view = local_rows(layout.root)
    assert len(local_view) == 3 * 121
    assert sorted(loaded["False"]) == sorted(local_view) == sorted(loaded["True"])


def test_push_of_a_corrupt_shard_is_one_line_exit_1_and_no_repo(tmp_path, data_dir):
    layout = record_session(data_dir, episodes=2, seed=26)
    shard = layout.root / load_manifest(layout)["shards"][-1]["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with HubServer() as hub:
        result = subprocess.run(push_cmd(data_dir), env=hub_env(hub, tmp_path / "hf"), cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        # Only who the token is was asked (for the repo name): nothing created or committed.
        assert [r["route"] for r in hub.log] == ["whoami"] and REPO not in hub.repos
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"gymrec-writer: {shard.relative_to(layout.root)} of {ENV_ID} does "
                           "not match its manifest checksum") and "--repair" in line
