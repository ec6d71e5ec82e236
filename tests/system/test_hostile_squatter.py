"""A program that took the writer's port first (issue 12, 6), and the lesser findings (7): a
recorder never reports frames durable that a real writer did not confirm."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from recorder.delivery.link import WriterLink
from recorder.delivery.local_writer import ensure_writer
from shared import protocol as p
from shared.errors import EndpointBusy, ProtocolError, StorageError
from shared.schema import StepData
from shared.security import ClientKeys, load_public, load_secret, make_keypair, writer_secret
from tests.support.messages import make_start
from writer.store.durable import write_json_atomic


class Squatter:
    """Binds the writer's endpoint and says yes to everything: a HelloReply naming a folder
    (`data_dir`) with a made-up proof, and an Ack of every message it hears."""

    def __init__(self, endpoint: str, data_dir: str, answer_hello: bool = True):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.data_dir, self.answer_hello = data_dir, answer_hello
        self.acks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.sock.poll(20):
                continue
            peer, *frames = self.sock.recv_multipart()
            try:
                msg = p.from_frames(frames)
            except ProtocolError:
                continue
            if isinstance(msg, p.Hello) and self.answer_hello:
                reply = p.HelloReply(nonce=msg.nonce, version="0", data_dir=self.data_dir,
                                     proof="0" * 32)
            elif hasattr(msg, "seq") and hasattr(msg, "session"):
                seq = msg.seq + getattr(msg, "count", 1) - 1 if isinstance(msg, p.StepBatch) \
                    else msg.seq
                reply = p.Ack(session=msg.session, seq=seq, proof="0" * 32)
                self.acks += 1
            else:
                continue
            self.sock.send_multipart([peer, *p.to_frames(reply)])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(linger=0)


def _record_into(endpoint: str, seconds: float) -> WriterLink:
    start = make_start(frame_shape=[4, 5, 3], codec="png")
    link = WriterLink(endpoint, start, 1 << 22, batch_steps=4)
    frame = np.zeros((4, 5, 3), np.uint8)
    for step in range(40):
        link.send_step(StepData(episode=0, step=step, seed=1, frame=frame, timestamp=time.time(),
                                action=0, reward=0.0, terminated=False, truncated=False))
        link.pump()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and link.refused is None:
        link.pump()
        time.sleep(0.01)
    return link


@pytest.mark.parametrize("answer_hello", [True, False])
def test_a_squatter_never_makes_frames_durable(endpoint, tmp_path, answer_hello):
    """A fake writer that acknowledged everything made the recorder print "frames durable:
    1414" and exit 0 with nothing on disk. Its acks carry no proof of the writer's secret."""
    squatter = Squatter(endpoint, str(tmp_path), answer_hello)
    try:
        link = _record_into(endpoint, 2.0)
        link.close()
    finally:
        squatter.close()
    assert squatter.acks > 0  # it did acknowledge
    assert link.outbox.steps_durable == 0 and link.outbox.acked_seq == -1
    assert link.stats.unproven_acks > 0
    if answer_hello:
        assert "not a gymrec writer" in link.refused


def test_a_squatter_that_names_our_data_dir_still_cannot_prove_it(endpoint, tmp_path):
    """Naming the real writer's folder does not help: the proof needs the secret in it."""
    writer_secret(tmp_path)  # a real writer's secret there, readable by us only
    squatter = Squatter(endpoint, str(tmp_path))
    try:
        with pytest.raises(EndpointBusy, match="not a gymrec writer"):
            ensure_writer(endpoint, tmp_path, tmp_path / "writer.log")
        link = _record_into(endpoint, 1.0)
        link.close()
    finally:
        squatter.close()
    assert link.outbox.steps_durable == 0 and "not a gymrec writer" in link.refused


def test_a_real_writer_proves_itself(writer_factory, endpoint, data_dir, tmp_path):
    writer_factory().start()
    handle = ensure_writer(endpoint, data_dir, tmp_path / "writer.log")
    assert handle.process is None  # found, and proven: not started again
    link = _record_into(endpoint, 0.0)
    link.send_session_end("done")
    assert link.drain(20) and link.outbox.steps_durable == 40
    assert link.stats.unproven_acks == 0
    link.close()
    assert (data_dir / ".writer.secret").stat().st_mode & 0o777 == 0o600


def test_a_keyless_recorder_is_told_the_writer_wants_keys(writer_factory, endpoint, data_dir,
                                                          tmp_path):
    """7. A recorder without keys met a CURVE writer on its data folder and was told "another
    gymrec-writer is using DATA", as if no writer answered at all."""
    server_public, server_secret = make_keypair(tmp_path / "server", "writer")
    make_keypair(tmp_path / "allowed", "alice")
    public, secret = load_secret(tmp_path / "allowed" / "alice.key_secret")
    writer = writer_factory("--curve-key", str(server_secret), "--allow-keys",
                            str(tmp_path / "allowed"))
    writer.probe_keys = ClientKeys(server_public=load_public(server_public), public=public,
                                   secret=secret)
    writer.start()
    with pytest.raises(StorageError, match="CURVE keys"):
        ensure_writer(endpoint, data_dir, tmp_path / "writer.log")


def test_a_planted_symlink_is_not_written_through(tmp_path):
    """7. A symlinked `.meta/manifest.json.tmp` had its target overwritten."""
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    manifest = tmp_path / "manifest.json"
    (tmp_path / "manifest.json.tmp").symlink_to(target)
    write_json_atomic(manifest, {"version": 1})
    assert target.read_text() == "precious"
    assert not manifest.is_symlink() and manifest.read_text().startswith("{")
