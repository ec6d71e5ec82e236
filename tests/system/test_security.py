"""CURVE: a writer beyond loopback admits only allow-listed recorder keys."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from recorder.delivery.link import WriterLink, probe_writer
from shared.errors import UsageError
from shared.schema import EpisodeEndData, StepData
from shared.security import (
    ClientKeys,
    ServerKeys,
    is_loopback,
    load_public,
    load_secret,
    make_keypair,
)
from tests.support.messages import make_start
from writer.daemon import Writer, WriterSettings


@pytest.fixture
def keys(tmp_path):
    server_pub, server_secret = make_keypair(tmp_path / "server", "writer")
    make_keypair(tmp_path / "recorders", "alice")
    make_keypair(tmp_path / "strangers", "mallory")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "alice.key").write_bytes((tmp_path / "recorders" / "alice.key").read_bytes())
    return tmp_path, server_pub, server_secret, allowed


def _client(folder, name, server_public) -> ClientKeys:
    public, secret = load_secret(folder / f"{name}.key_secret")
    return ClientKeys(server_public=server_public, public=public, secret=secret)


@pytest.fixture
def curve_writer(keys, endpoint, data_dir):
    root, _, server_secret, allowed = keys
    public, secret = load_secret(server_secret)
    writer = Writer.create(WriterSettings(
        data_dir=data_dir, endpoint=endpoint, curve=ServerKeys(public, secret, allowed)))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    yield writer, public
    writer.stop()
    thread.join(30)


def test_only_allow_listed_keys_get_in(keys, curve_writer, endpoint, data_dir):
    root = keys[0]
    _, server_public = curve_writer
    assert probe_writer(endpoint, 2.0, _client(root / "recorders", "alice", server_public))
    assert probe_writer(endpoint, 1.0, _client(root / "strangers", "mallory",
                                               server_public)) is None
    assert probe_writer(endpoint, 1.0) is None  # a plain client gets nothing
    wrong_server = _client(root / "recorders", "alice", _client(root / "strangers", "mallory",
                                                               b"x" * 40).public)
    assert probe_writer(endpoint, 1.0, wrong_server) is None


def test_an_allowed_recorder_records_over_curve(keys, curve_writer, endpoint, data_dir):
    _, server_public = curve_writer
    start = make_start(env_id="Curve-v0", codec="png", frame_shape=[4, 4, 3],
                       action_space={"type": "Discrete", "n": 2, "start": 0}, action_labels=[])
    link = WriterLink(endpoint, start, 1 << 20,
                      curve=_client(keys[0] / "recorders", "alice", server_public))
    frame = np.zeros((4, 4, 3), np.uint8)
    for step in range(20):
        link.send_step(StepData(episode=0, step=step, seed=1, frame=frame, timestamp=time.time(),
                                action=step % 2, reward=0.0, terminated=False,
                                truncated=step == 19))
        link.pump()
    link.send_episode_end(EpisodeEndData(episode=0, step=20, seed=1, frame=frame,
                                         timestamp=time.time(), outcome="truncated",
                                         terminated=False, truncated=True))
    link.send_session_end("completed")
    assert link.drain(20)
    assert link.outbox.steps_durable == 20
    link.close()


def test_listening_beyond_loopback_requires_curve(data_dir):
    with pytest.raises(UsageError, match="needs CURVE"):
        Writer.create(WriterSettings(data_dir=data_dir, endpoint="tcp://0.0.0.0:5999"))


@pytest.mark.parametrize(("endpoint", "loopback"), [
    ("tcp://127.0.0.1:1", True), ("tcp://127.8.0.1:1", True), ("tcp://localhost:1", True),
    ("tcp://[::1]:1", True), ("ipc:///tmp/x", True), ("tcp://0.0.0.0:1", False),
    ("tcp://*:1", False), ("tcp://eth0:1", False), ("tcp://192.168.1.4:1", False),
])
def test_is_loopback(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


def test_cli_end_to_end_over_curve(keys, writer_factory, endpoint, data_dir):
    """Both CLIs with their key flags: the allowed recorder records, a stranger is refused."""
    from tests.support.processes import run_record

    root, server_pub, server_secret, allowed = keys
    writer = writer_factory("--curve-key", str(server_secret), "--allow-keys", str(allowed))
    writer.probe_keys = _client(root / "recorders", "alice", load_public(server_pub))
    writer.start()
    ok = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "1",
                    "--max-steps", "30", "--curve-key", str(root / "recorders/alice.key_secret"),
                    "--server-key", str(server_pub))
    assert ok.returncode == 0, ok.stderr
    assert "frames durable: 30" in ok.stdout
    stranger = run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "1",
                          "--curve-key", str(root / "strangers/mallory.key_secret"),
                          "--server-key", str(server_pub), timeout=60)
    assert stranger.returncode == 5 and "accepted our CURVE key" in stranger.stderr
    assert "Traceback" not in stranger.stderr
