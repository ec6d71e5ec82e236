"""A hostile peer for tests: floods a writer with garbage, mutated, oversized, deeply nested,
wrong-version, path-escaping and replayed messages. Prints how many it sent that no valid
decoder may accept.

    python -m tests.support.rogue_peer ENDPOINT --messages 20000 --seed 1

`Rogue` is the same peer in a test's hands: one connection that sends what it is told (valid
or not) and reads the writer's replies; the `*_ring` helpers plant files in /dev/shm.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid
from pathlib import Path

import msgpack
import numpy as np
import zmq

from shared import protocol as p
from shared.errors import ProtocolError
from shared.shm import ring_bytes, ring_mark, shm_path
from tests.support.messages import make_start, make_step


def _start(session: str, env_id: str) -> p.SessionStart:
    return make_start(session=session, env_id=env_id, frame_shape=[8, 8, 3],
                      recorder_version="rogue", collector="rogue")


def _nested(depth: int) -> bytes:
    """A map whose "action" is `depth` nested one-element arrays (built by hand: msgpack's own
    packer refuses such depth)."""
    prefix = bytes([0x82]) + msgpack.packb("type") + msgpack.packb("step")
    return prefix + msgpack.packb("action") + b"\x91" * depth + b"\x01"


def _pick(kind: int, rng: random.Random, valid: list, session: str,
          pixels: bytes) -> tuple[list, bool]:
    """One hostile message, and whether every valid decoder must refuse it."""
    if kind == 0:
        return [rng.randbytes(rng.randrange(1, 200))], True
    if kind == 1:
        return [p.MAGIC, rng.randbytes(rng.randrange(0, 300)), rng.randbytes(10)], False
    if kind == 2:
        header = bytearray(valid[1][1])
        for _ in range(rng.randrange(1, 6)):
            header[rng.randrange(len(header))] = rng.randrange(256)
        return [p.MAGIC, bytes(header), pixels], False
    if kind == 3:
        return [p.MAGIC[:-1] + bytes([p.MAGIC[-1] + 1]), valid[1][1], pixels], True
    if kind == 4:
        return [p.MAGIC, _nested(rng.choice([50, 500, 5000]))], True
    if kind == 5:
        env_id = rng.choice(["../../escape", "/etc/evil", "a/../../b", "..", "x" * 300])
        return p.to_frames(_start(f"{rng.getrandbits(128):032x}", env_id)), True
    if kind == 6:
        return valid[rng.randrange(len(valid))], False  # replayed: duplicates after the first
    if kind == 7:
        header = msgpack.packb({"type": "step", "session": session, "seq": 2**64 - 1})
        return [p.MAGIC, header, pixels], True
    if kind == 8:
        ext = msgpack.packb({"type": "ack", "session": msgpack.ExtType(1, b"x"), "seq": 1})
        return [p.MAGIC, ext], True
    return [p.MAGIC, msgpack.packb([1, 2, 3])], True


class Rogue:
    """One hostile connection to a writer."""

    def __init__(self, endpoint: str):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, msg_or_frames) -> None:
        frames = msg_or_frames if isinstance(msg_or_frames, list) else p.to_frames(msg_or_frames)
        self.sock.send_multipart(frames)

    def replies(self, seconds: float = 1.0, until=None) -> list:
        """Replies read for `seconds`, or until one satisfies `until`."""
        got: list = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and self.sock.poll(int(left * 1000) + 1):
            got.append(p.from_frames(self.sock.recv_multipart()))
            if until is not None and until(got[-1]):
                break
        return got

    def ask(self, msg, kind: type, seconds: float = 10.0):
        """Send `msg`; the first reply of `kind` about its session (None if none came)."""
        self.send(msg)
        for reply in self.replies(seconds, lambda m: isinstance(m, kind)):
            if isinstance(reply, kind):
                return reply
        return None

    def close(self) -> None:
        self.sock.close(linger=0)


def rogue_start(**overrides) -> p.SessionStart:
    """A SessionStart of a made-up 8×8 RGB game (overrides by name)."""
    fields = dict(session=uuid.uuid4().hex, env_id="Rogue-v0", frame_shape=[8, 8, 3],
                  recorder_version="rogue", collector="rogue", codec="png")
    return make_start(**{**fields, **overrides})


def batch_of(start: p.SessionStart, seq: int, n: int, **overrides) -> p.StepBatch:
    """`n` steps of episode 0 from step seq-1 (pixels inline unless `slots` is given)."""
    h, w, c = start.frame_shape
    fields = dict(session=start.session, seq=seq, episode=0, first_step=seq - 1, seed=1,
                  shape=[h, w, c], timestamps=[1.0] * n, actions=[0] * n, rewards=[0.0] * n,
                  terminated=[False] * n, truncated=[False] * n, slots=[],
                  pixels=[bytes(h * w * c)] * n)
    fields.update(overrides)
    if fields["slots"]:
        fields["pixels"] = None
    return p.StepBatch(**fields)


def good_ring(start: p.SessionStart, size: int | None = None) -> Path:
    """A ring file as a recorder makes it (sparse: `size` bytes when given)."""
    path = shm_path(start.session)
    with open(path, "wb") as f:
        f.write(ring_mark(start.owner_token))
        f.truncate(size or ring_bytes(start.shm_slots, _frame_bytes(start)))
    return path


def fifo_ring(start: p.SessionStart) -> Path:
    path = shm_path(start.session)
    os.mkfifo(path, 0o600)
    return path


def symlink_ring(start: p.SessionStart, target: Path) -> Path:
    path = shm_path(start.session)
    path.symlink_to(target)
    return path


def _frame_bytes(start: p.SessionStart) -> int:
    h, w, c = start.frame_shape
    return h * w * c


def _wait_until_read(sock: zmq.Socket, timeout: float = 180) -> None:
    """A writer handles one connection's messages in order: once it answers a Hello sent after
    the flood, it has read the whole flood (else a disconnect would drop what it had not)."""
    nonce = random.getrandbits(48)
    sock.send_multipart(p.to_frames(p.Hello(nonce=nonce, version="rogue")))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and sock.poll(int(left * 1000) + 1):
        try:
            reply = p.from_frames(sock.recv_multipart())
        except ProtocolError:
            continue
        if isinstance(reply, p.HelloReply) and reply.nonce == nonce:
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.connect(args.endpoint)
    session = f"{rng.getrandbits(128):032x}"
    pixels = np.zeros((8, 8, 3), np.uint8).tobytes()
    valid = [p.to_frames(_start(session, "Rogue-v0"))]
    for seq in range(1, 50):
        valid.append(p.to_frames(make_step(session=session, seq=seq, step=seq - 1,
                                           shape=[8, 8, 3], pixels=pixels)))
    invalid = sent = 0
    for i in range(args.messages):
        frames, surely_invalid = _pick(i % 10, rng, valid, session, pixels)
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                break
            except zmq.Again:
                time.sleep(0.005)
        sent += 1
        invalid += surely_invalid
    _wait_until_read(sock)
    # Oversized last: ZeroMQ discards them and drops our connection (MAXMSGSIZE), so nothing
    # after them would be counted by the writer.
    for _ in range(3):
        sock.send_multipart([p.MAGIC, b"\x80", b"\0" * (70 * 1024 * 1024)])
    time.sleep(1)
    print(json.dumps({"sent": sent, "invalid_at_least": invalid}), flush=True)
    sock.close()


if __name__ == "__main__":
    main()
