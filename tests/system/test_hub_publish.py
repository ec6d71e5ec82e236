"""Publishing passes against the local Hub server, in-process: incremental, batched, exactly once
through 412s, 429s, 500s after an applied commit and dropped connections."""

from __future__ import annotations

import hashlib
import io
import json

import huggingface_hub.constants
import pyarrow.parquet as pq
import pytest
import yaml

from shared.hub_errors import parse_retry_after
from tests.support.hub_data import ENV_ID, record_session
from tests.support.hub_server import HubServer
from writer.hub.card import DEFAULT_REPO_TEMPLATE, card_text, repo_id_for
from writer.hub.client import HubAuthError, HubClient, Transient
from writer.hub.upload import DamagedShard, RetryPolicy, load_journal, parquet_path, publish
from writer.store.shards import load_manifest

REPO = f"me/GymnasiumRecording__{ENV_ID}"
FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubServer() as server:
        yield server


@pytest.fixture
def lfs_hub(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    with HubServer(lfs=True) as server:
        yield server


def _local_parquet(layout) -> set[str]:
    return {parquet_path(s["file"]) for s in load_manifest(layout)["shards"]}


def _remote_rows(hub: HubServer) -> list[tuple[str, int]]:
    rows = []
    for path, data in hub.files(REPO).items():
        if path.startswith("data/"):
            table = pq.read_table(io.BytesIO(data), columns=["session_id", "seq"])
            rows += list(zip(table["session_id"].to_pylist(), table["seq"].to_pylist(),
                             strict=True))
    return rows


def _assert_exactly_once(hub: HubServer, layout) -> None:
    committed = [p for p in hub.committed_paths(REPO) if p.startswith("data/")]
    assert len(committed) == len(set(committed)), "a shard was committed twice"
    assert set(committed) == _local_parquet(layout)
    rows = _remote_rows(hub)
    assert len(rows) == len(set(rows)) == sum(s["rows"] for s in load_manifest(layout)["shards"])
    journal = load_journal(layout)["repos"][REPO]["shards"]
    assert {e["parquet"] for e in journal.values()} == _local_parquet(layout)


def test_first_upload_then_only_the_new_shards(hub, data_dir):
    layout = record_session(data_dir, episodes=3, seed=1)
    client = HubClient(hub.url, hub.token)
    first = publish(layout, client, REPO)
    assert first.shards == 3 and first.rows == 93 and len(first.commits) == 1
    files = hub.files(REPO)
    assert _local_parquet(layout) <= set(files)
    session = next(p for p in files if p.startswith("meta/sessions/"))
    assert json.loads(files[session])["status"] == "ended"
    assert json.loads(files["meta/info.json"])["published"]["rows"] == 93
    card = files["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["configs"][0]["data_files"][0]["path"] == "data/*.parquet"
    assert {"name": "image", "dtype": "image"} in meta["dataset_info"]["features"]
    assert "| 1 | 3 | 90 | 93 |" in card
    # Parquet keeps the `datasets` features (so `image` decodes as Image()).
    schema = pq.read_schema(io.BytesIO(files[sorted(_local_parquet(layout))[0]]))
    assert json.loads(schema.metadata[b"huggingface"])["info"]["features"]["image"] == {
        "_type": "Image"}
    assert not any((layout.root / ".upload").iterdir())

    commits_before = len(hub.requests("commit"))
    again = publish(layout, client, REPO)
    assert again.commits == [] and len(hub.requests("commit")) == commits_before

    old = _local_parquet(layout)
    record_session(data_dir, episodes=2, seed=2)  # more recording, a second session
    second = publish(layout, client, REPO)
    assert second.shards == 2 and len(second.commits) == 1
    added = hub.requests("commit")[-1]["added"]
    new = _local_parquet(layout) - old
    assert {p for p in added if p.startswith("data/")} == new
    assert "README.md" in added and "meta/info.json" in added
    assert sum(p.startswith("meta/sessions/") for p in added) == 1  # the new session's only
    assert "| 2 | 5 | 150 | 155 |" in hub.files(REPO)["README.md"].decode()
    _assert_exactly_once(hub, layout)


def test_lfs_uploads_without_xet_send_each_blob_once(lfs_hub, data_dir):
    layout = record_session(data_dir, episodes=3, seed=3)
    client = HubClient(lfs_hub.url, lfs_hub.token)
    publish(layout, client, REPO)
    puts = _data_puts(lfs_hub)
    assert len(puts) == 3 and len(set(puts)) == 3
    record_session(data_dir, episodes=1, seed=4)
    publish(layout, client, REPO)
    assert len(_data_puts(lfs_hub)) == 4
    _assert_exactly_once(lfs_hub, layout)


def _data_puts(hub: HubServer) -> list[str]:
    """The LFS uploads of shards (the card's preview picture is an LFS file too)."""
    shards = {hashlib.sha256(b).hexdigest() for p, b in hub.files(REPO).items()
              if p.startswith("data/")}
    return [e["path"].rsplit("/", 1)[-1] for e in hub.requests("lfs-put")
            if e["path"].rsplit("/", 1)[-1] in shards]


def test_commits_are_batched(hub, data_dir):
    layout = record_session(data_dir, episodes=7, seed=5)
    report = publish(layout, HubClient(hub.url, hub.token), REPO, files_per_commit=3)
    assert len(report.commits) == 3
    sizes = [sum(p.startswith("data/") for p in e["added"]) for e in hub.requests("commit")]
    assert sizes == [3, 3, 1]
    _assert_exactly_once(hub, layout)


def test_stale_parent_gets_412_then_the_repo_is_read_again(hub, data_dir):
    layout = record_session(data_dir, episodes=2, seed=6)
    client = HubClient(hub.url, hub.token)
    client.ensure_repo(REPO)
    hub.race_next_commit()  # someone else commits while we prepare ours
    publish(layout, client, REPO, retry=FAST)
    statuses = [e["status"] for e in hub.requests("commit")]
    assert statuses == [412, 200]
    assert "someone-else.txt" in hub.files(REPO)
    _assert_exactly_once(hub, layout)


def test_500_after_the_commit_was_applied_sends_nothing_twice(hub, data_dir):
    layout = record_session(data_dir, episodes=2, seed=7)
    hub.fail_next("commit", 500, apply=True)
    sleeps: list[float] = []
    report = publish(layout, HubClient(hub.url, hub.token), REPO, retry=FAST,
                     sleep=sleeps.append)
    assert [e["status"] for e in hub.requests("commit")] == [500]  # no second commit at all
    assert report.recovered == 2 and len(sleeps) == 1
    _assert_exactly_once(hub, layout)


def test_dropped_connection_after_the_commit_was_applied(hub, data_dir):
    layout = record_session(data_dir, episodes=2, seed=8)
    hub.drop_next("commit", apply=True)
    report = publish(layout, HubClient(hub.url, hub.token), REPO, retry=FAST,
                     sleep=lambda s: None)
    assert report.recovered == 2
    _assert_exactly_once(hub, layout)


def test_429_and_503_wait_as_told_then_succeed(hub, data_dir):
    layout = record_session(data_dir, episodes=1, seed=9)
    hub.fail_next("commit", 429, retry_after="3")
    hub.fail_next("commit", 503)
    sleeps: list[float] = []
    publish(layout, HubClient(hub.url, hub.token), REPO, retry=FAST, sleep=sleeps.append)
    assert sleeps == [3.0, FAST.delay(2, None)]
    assert [e["status"] for e in hub.requests("commit")] == [429, 503, 200]
    _assert_exactly_once(hub, layout)


def test_a_hub_that_stays_down_gives_up_after_the_policy(hub, data_dir):
    layout = record_session(data_dir, episodes=1, seed=10)
    hub.fail_next("commit", 502, times=10)
    with pytest.raises(Transient):
        publish(layout, HubClient(hub.url, hub.token), REPO, retry=FAST, sleep=lambda s: None)
    assert len(hub.requests("commit")) == FAST.attempts
    assert REPO not in load_journal(layout)["repos"] or not load_journal(layout)["repos"][REPO][
        "shards"]


def test_a_refused_token_is_one_clear_error_without_the_token(hub, data_dir):
    layout = record_session(data_dir, episodes=1, seed=11)
    bad = "hf_not_the_right_token_42"
    with pytest.raises(HubAuthError) as err:
        publish(layout, HubClient(hub.url, bad), REPO)
    assert "refused the token" in str(err.value) and bad not in str(err.value)


def test_a_shard_that_fails_its_checksum_stops_the_push_before_the_hub_is_touched(hub,
                                                                                 data_dir):
    layout = record_session(data_dir, episodes=2, seed=12)
    first = layout.root / load_manifest(layout)["shards"][0]["file"]
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0x01
    first.write_bytes(bytes(data))
    with pytest.raises(DamagedShard, match=r"does not match its manifest checksum.*--repair"):
        publish(layout, HubClient(hub.url, hub.token), REPO)
    assert REPO not in hub.repos and hub.log == []  # no empty repo, not even a request


def test_repo_names_and_retry_after():
    assert repo_id_for(DEFAULT_REPO_TEMPLATE, "ALE/Pong-v5", "me") == \
        "me/GymnasiumRecording__ALE_Pong-v5"
    assert repo_id_for("org/Atari-{env}", "BreakoutNoFrameskip-v4", None) == \
        "org/Atari-BreakoutNoFrameskip-v4"
    with pytest.raises(Exception, match="owner/name"):
        repo_id_for("no-slash", "x", "me")
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now=1767225600.0) == 10.0
    assert parse_retry_after("soon") is None


def test_card_names_button_labels_and_differing_sessions(data_dir):
    a = record_session(data_dir, episodes=1, seed=13)
    sessions = [json.loads(p.read_text()) for p in sorted((a.meta / "sessions").glob("*.json"))]
    second = json.loads(json.dumps(sessions[0]))
    second["start"].update(session="f" * 32, fps=60.0,
                           action_space={"type": "MultiBinary", "n": 2},
                           action_labels=["B", "A"])
    from writer.hub.card import Published

    text = card_text("me/x", sessions + [second], Published(rows=10, frames=9, episodes=1,
                                                           play_seconds=3600))
    assert "Sessions differ in: fps, action_space" in text
    assert "| 1.00 |" in text  # hours of play
    text = card_text("me/x", [second], Published())
    assert "| index in `action` | button |" in text and "| 1 | A |" in text
    assert "list: int8" in text  # the features of a MultiBinary action


def test_worker_publishes_what_it_is_told_and_stops_for_a_refused_token(hub, data_dir, caplog):
    from writer.hub.worker import PushSettings, UploadWorker

    layout = record_session(data_dir, episodes=2, seed=14)
    worker = UploadWorker(HubClient(hub.url, hub.token), data_dir,
                          PushSettings(DEFAULT_REPO_TEMPLATE, interval=0.0)).start()
    record_session(data_dir, episodes=1, seed=15)
    worker.notify(layout)
    assert worker.finish(30)
    assert sum(r.shards for r in worker.reports) == 3
    _assert_exactly_once(hub, layout)

    refused = UploadWorker(HubClient(hub.url, "hf_wrong_token_123"), data_dir,
                           PushSettings(DEFAULT_REPO_TEMPLATE, interval=0.0)).start()
    refused.notify(layout)
    assert refused.finish(30) and refused.reports == []
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "refused the token" in errors[0]
    assert "hf_wrong_token_123" not in caplog.text


def test_token_and_endpoint_come_from_the_environment_then_dotenv(monkeypatch, tmp_path):
    from shared.config import hub_endpoint, hub_token, parse_dotenv

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    # (the login's token file is under conftest's fresh HF_HOME: there is none)
    assert hub_token() is None and hub_endpoint() == "https://huggingface.co"
    (tmp_path / ".env").write_text('export HF_TOKEN="hf_from_dotenv"\n'
                                   "HF_ENDPOINT=http://mirror.local/ # a mirror\n")
    assert hub_token() == "hf_from_dotenv" and hub_endpoint() == "http://mirror.local"
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert hub_token() == "hf_from_env"
    assert parse_dotenv("# c\n\nA = 'x y'\nB=\nnot a pair\n") == {"A": "x y", "B": ""}
