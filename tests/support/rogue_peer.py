"""A hostile peer for tests: floods a writer with garbage, mutated, oversized, deeply nested,
wrong-version, path-escaping and replayed messages. Prints how many it sent that no valid
decoder may accept.

    python -m tests.support.rogue_peer ENDPOINT --messages 20000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import time

import msgpack
import numpy as np
import zmq

from shared import protocol as p
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
        return [b"GYMREC\x03", valid[1][1], pixels], True
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
    time.sleep(0.5)
    # Oversized last: ZeroMQ discards them and drops our connection (MAXMSGSIZE), so nothing
    # after them would be counted by the writer.
    for _ in range(3):
        sock.send_multipart([p.MAGIC, b"\x80", b"\0" * (70 * 1024 * 1024)])
    time.sleep(1)
    print(json.dumps({"sent": sent, "invalid_at_least": invalid}), flush=True)
    sock.close()


if __name__ == "__main__":
    main()
