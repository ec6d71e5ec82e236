"""Hostile local peers against one real writer while a real recorder records Breakout at 60 FPS
beside them (issue 12). Each test is one attack that worked before; the last test checks the
recorder: every frame durable, the writer alive, its memory bounded.

The tests share the writer and the recorder (module scope) and run in file order.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time

import pyarrow as pa
import pytest

from shared import protocol as p
from shared.codec import encode_frame
from shared.shm import ring_bytes, shm_path
from tests.support.datasets_check import load
from tests.support.processes import WriterProcess, free_endpoint
from tests.support.recorders import PacedRecorder, report, rows_table, steps_by_episode
from tests.support.rogue_peer import (
    Rogue,
    batch_of,
    fifo_ring,
    good_ring,
    rogue_start,
    symlink_ring,
)

REAL_ENV = "BreakoutNoFrameskip-v4"


def _rss_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


class Field:
    """The writer, the real recorder beside it, and what the attacks left to check."""

    def __init__(self, tmp):
        self.data_dir = tmp / "data"
        self.endpoint = free_endpoint()
        self.writer = WriterProcess(self.endpoint, self.data_dir, tmp / "writer.log").start()
        # Many episodes: it plays through every attack and is stopped (Ctrl-C) after the last.
        self.recorder = PacedRecorder(self.endpoint, self.data_dir, "--fps", "60",
                                      "--episodes", "1000", "--max-steps", "600", "--seed", "12")
        self.recorder.wait_steps(30)
        self.rss_before = _rss_mb(self.writer.proc.pid)
        self.rss_peak = self.rss_before
        self.probe_ms: list[float] = []
        self.rogues: list[Rogue] = []
        self.rings: list = []

    def rogue(self) -> Rogue:
        rogue = Rogue(self.endpoint)
        self.rogues.append(rogue)
        return rogue

    def alive(self) -> None:
        """The writer still runs and answers a probe at once (its loop is not stuck)."""
        from recorder.delivery.link import probe_writer

        assert self.writer.proc.poll() is None, self.writer.log.read_text()[-3000:]
        began = time.monotonic()
        assert probe_writer(self.endpoint, 5.0) is not None
        self.probe_ms.append((time.monotonic() - began) * 1000)
        self.rss_peak = max(self.rss_peak, _rss_mb(self.writer.proc.pid))

    def victim_session(self) -> str:
        self.recorder.wait_steps(1)
        return self.recorder.latest["session"]

    def close(self) -> None:
        for rogue in self.rogues:
            rogue.close()
        for path in self.rings:
            path.unlink(missing_ok=True)
        while PacedRecorder.running:
            PacedRecorder.running.pop().interrupt()
        self.writer.stop()


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    f = Field(tmp_path_factory.mktemp("hostile"))
    yield f
    f.close()


def _started(field: Field, rogue: Rogue, start: p.SessionStart) -> None:
    ack = rogue.ask(start, p.Ack)
    assert ack is not None and ack.session == start.session and ack.seq == 0


def _acked(rogue: Rogue, msg, seq: int) -> bool:
    """Send `msg` and wait for the ack of `seq` (acks of earlier seqs may come first)."""
    rogue.send(msg)
    replies = rogue.replies(10, lambda m: isinstance(m, p.Ack) and m.seq >= seq)
    return any(isinstance(m, p.Ack) and m.seq >= seq for m in replies)


def _refused(field: Field, rogue: Rogue, start: p.SessionStart, why: str) -> str:
    """Send a SessionStart that must be refused: a Refused naming `why` comes back."""
    refused = rogue.ask(start, p.Refused, seconds=5)
    assert refused is not None and refused.session == start.session, f"no Refused ({why})"
    assert re.search(why, refused.reason), refused.reason
    return refused.reason


def test_values_beyond_their_columns_never_stop_the_writer(field):
    """1. A step beyond int32, a Discrete space whose actions pass int64, a MultiDiscrete of
    nvec 2**64-1 and Box actions of NaN/inf: each is refused; before, each made the writer
    exit 1 (its shutdown raising too)."""
    rogue = field.rogue()
    start = rogue_start()
    _started(field, rogue, start)
    rogue.send(batch_of(start, 1, 4, first_step=2**31 - 1))
    _refused(field, rogue, rogue_start(action_space={"type": "Discrete", "n": 2,
                                                     "start": 2**63 - 1}), "int64")
    _refused(field, rogue, rogue_start(action_space={"type": "MultiDiscrete",
                                                     "nvec": [2**64 - 1]}), "int64")
    box = rogue_start(action_space={"type": "Box", "shape": [2], "dtype": "float32"},
                      env_id="RogueBox-v0")
    _started(field, rogue, box)
    for bad in (math.nan, math.inf, 1e300):
        rogue.send(batch_of(box, 1, 1, actions=[[bad, 0.0]]))
    rogue.send(batch_of(box, 1, 1, actions=[[0.5, 0.0]]))  # the one valid step
    assert _acked(rogue, p.SessionEnd(session=box.session, seq=2, reason="done", steps_sent=1,
                                      steps_dropped=0), 2)
    field.alive()
    actions = load(field.data_dir, "RogueBox-v0")["action"]
    assert [a for a in actions if a is not None and not all(map(math.isnan, a))] == [
        pytest.approx([0.5, 0.0])]


def test_a_truncated_ring_fails_its_session_only(field):
    """2. A ring cut to 0 bytes after its SessionStart, then a slot named: SIGBUS before; now
    the session fails with one line and a Refused."""
    rogue = field.rogue()
    start = rogue_start(shm_slots=4)
    field.rings.append(good_ring(start))
    _started(field, rogue, start)
    os.truncate(shm_path(start.session), 0)
    rogue.send(batch_of(start, 1, 1, slots=[2]))
    refused = rogue.replies(5, lambda m: isinstance(m, p.Refused))
    assert any(isinstance(m, p.Refused) and "truncated" in m.reason for m in refused), refused
    field.alive()
    assert "truncated" in field.writer.log.read_text()


@pytest.mark.parametrize("codec, image", [
    ("png", encode_frame(bytes(16 * 8 * 3), [16, 8, 3], "png", 95)),  # a 8x16 image for 8x8
    ("jpeg", encode_frame(bytes(8 * 8 * 3), [8, 8, 3], "png", 95)),  # a PNG for a JPEG session
    ("jpeg", encode_frame(bytes(8 * 8), [8, 8, 1], "jpeg", 95)),  # grey for an RGB session
    ("jpeg", b"\xff\xd8 not a JPEG at all"),
])
def test_images_that_are_not_the_sessions_fail_its_session_only(field, codec, image):
    """Steps encoded by the recorder (`frame_hashes`): an image of another size, colour layout
    or codec, or no image at all, fails its session with a Refused saying so; the images of a
    session's kind before it are stored as sent."""
    rogue = field.rogue()
    start = rogue_start(codec=codec, env_id=f"RogueImages-{codec}-v0")
    good = encode_frame(bytes(range(192)), [8, 8, 3], codec, 95)
    _started(field, rogue, start)
    assert _acked(rogue, batch_of(start, 1, 2, frame_hashes=["a" * 32, "b" * 32],
                                  image_sizes=[len(good)] * 2, pixels=[good, good]), 2)
    rogue.send(batch_of(start, 3, 2, frame_hashes=["c" * 32] * 2,
                        image_sizes=[len(good), len(image)], pixels=[good, image]))
    refused = rogue.replies(5, lambda m: isinstance(m, p.Refused))
    why = "step image 1 is not a 8x8 image of 3 channels"
    assert any(isinstance(m, p.Refused) and why in m.reason for m in refused), refused
    field.alive()
    (shard,) = (field.data_dir / start.env_id / "data").glob(f"{start.session}-*.arrow")
    table = pa.ipc.open_stream(str(shard)).read_all()
    assert [cell["bytes"] for cell in table.column("image").to_pylist()] == [good, good]
    assert table.column("frame_hash").to_pylist() == ["a" * 32, "b" * 32]


def test_rings_that_are_not_plain_files_of_the_session_are_refused(field, tmp_path):
    """2. A FIFO (blocked the writer's loop in open()), a symlink to a private file (its bytes
    were stored as a frame), a ring of the wrong size and one without its owner's mark."""
    rogue = field.rogue()
    fifo = rogue_start(shm_slots=4)
    field.rings.append(fifo_ring(fifo))
    _refused(field, rogue, fifo, "not a regular file")
    field.alive()
    secret = tmp_path / "private"
    secret.write_bytes(b"TOP-SECRET" * 100)
    secret.chmod(0o600)
    linked = rogue_start(shm_slots=1)
    field.rings.append(symlink_ring(linked, secret))
    _refused(field, rogue, linked, "Too many levels of symbolic links|symbolic")
    wrong_size = rogue_start(shm_slots=4)
    field.rings.append(good_ring(wrong_size, size=ring_bytes(4, 192) + 1))
    _refused(field, rogue, wrong_size, "expected")
    unmarked = rogue_start(shm_slots=4)
    field.rings.append(good_ring(unmarked))
    unmarked_owner = dataclasses.replace(unmarked, owner_token="f" * 32)
    _refused(field, rogue, unmarked_owner, "owner")
    field.alive()
    shards = field.data_dir.glob("*/data/*.arrow")
    assert not any(b"TOP-SECRET" in path.read_bytes() for path in shards)


def test_a_huge_sparse_ring_neither_stalls_nor_pins_memory(field):
    """2. A 2 GiB sparse ring stalled the writer 6.8 s and pinned 2 GiB of its memory."""
    rogue = field.rogue()
    start = rogue_start(shm_slots=512, frame_shape=[1024, 1024, 4], env_id="RogueSparse-v0")
    field.rings.append(good_ring(start))
    assert shm_path(start.session).stat().st_size > 2**31
    began = time.monotonic()
    _started(field, rogue, start)
    rogue.send(batch_of(start, 1, 4, slots=[0, 100, 200, 511]))
    field.alive()
    assert time.monotonic() - began < 5
    assert field.rss_peak - field.rss_before < 500, (field.rss_before, field.rss_peak)


def test_a_session_belongs_to_the_connection_that_shows_its_token(field):
    """3. The real recorder's session, attacked from another connection: far-ahead seq probes
    (answered with its next seq before), injected steps (80 rows went in), its end (it was
    cut at 202 of 600 frames), a SessionStart of it with another token."""
    victim = field.victim_session()
    rogue = field.rogue()
    probe = rogue.ask(batch_of(rogue_start(session=victim), 10**9, 1), p.Resend, seconds=5)
    assert probe is not None and probe.seq == 0  # "send your SessionStart": nothing revealed
    for seq in range(1, 81):
        rogue.send(batch_of(rogue_start(session=victim), seq, 1, first_step=seq - 1))
    rogue.send(p.SessionEnd(session=victim, seq=1, reason="hijacked", steps_sent=0,
                            steps_dropped=0))
    _refused(field, rogue, rogue_start(session=victim, env_id=REAL_ENV), "another recorder")
    field.alive()
    assert field.recorder.proc.poll() is None  # still recording


def test_an_ended_session_is_never_reopened(field):
    """3. Reopening an ended session and appending rows of another schema made the dataset
    fail to load."""
    owner, stranger = field.rogue(), field.rogue()
    start = rogue_start(env_id="RogueEnded-v0")
    _started(field, owner, start)
    owner.send(batch_of(start, 1, 3))
    end = p.SessionEnd(session=start.session, seq=4, reason="done", steps_sent=3,
                       steps_dropped=0)
    assert _acked(owner, end, 4)
    time.sleep(0.3)  # the session is closed
    other = rogue_start(session=start.session, env_id="RogueEnded-v0",
                        action_space={"type": "Box", "shape": [3], "dtype": "float32"})
    _refused(field, stranger, other, "another recorder")
    assert _acked(owner, start, 4)  # the owner: told that all is durable, and no more
    owner.send(batch_of(start, 5, 2, first_step=3))
    field.alive()
    ds = load(field.data_dir, "RogueEnded-v0")
    assert ds.num_rows == 3
    state = json.loads((field.data_dir / "RogueEnded-v0" / ".meta" / "sessions"
                        / f"{start.session}.json").read_text())
    assert state["status"] == "ended" and "owner_token" not in state["start"]


def test_a_session_of_another_action_space_is_refused(field):
    """4. A session of the same env id with another action space made load_dataset fail."""
    rogue = field.rogue()
    poison = rogue_start(env_id=REAL_ENV, frame_shape=[210, 160, 3],
                         action_space={"type": "Discrete", "n": 18, "start": 0})
    _refused(field, rogue, poison, "action space")
    field.alive()


def test_one_peer_cannot_take_every_session_or_stall_the_loop(field):
    """5. 64 SessionStarts filled the writer and later recorders were ignored in silence; two
    batches naming one 8192×8192×4 slot stopped the writer reading any socket."""
    rogue = field.rogue()
    starts = [rogue_start() for _ in range(64)]
    for start in starts:
        rogue.send(start)
    answered: dict = {}
    deadline = time.monotonic() + 20
    while len(answered) < 64 and time.monotonic() < deadline:
        for m in rogue.replies(1):
            if isinstance(m, (p.Ack, p.Refused)):
                answered[m.session] = type(m)
    assert len(answered) == 64 and list(answered.values()).count(p.Refused) == 64 - 8
    _started(field, field.rogue(), rogue_start())  # another connection still gets in
    _refused(field, field.rogue(), rogue_start(frame_shape=[8192, 8192, 4]), "frames of")
    big_rogue = field.rogue()
    big = rogue_start(shm_slots=4, frame_shape=[2048, 2048, 4], env_id="RogueBig-v0")
    field.rings.append(good_ring(big))
    _started(field, big_rogue, big)
    big_rogue.send(batch_of(big, 1, 256, slots=[0] * 256))  # 4 GiB of frames: refused
    big_rogue.send(batch_of(big, 1, 4, slots=[0, 1, 2, 3]))
    big_rogue.send(batch_of(big, 5, 4, first_step=4, slots=[0, 1, 2, 3]))
    for _ in range(3):
        field.alive()
    assert max(field.probe_ms[-3:]) < 2000, field.probe_ms


def test_the_real_recorder_lost_nothing(field):
    """Beside all of the above: every frame of the real recorder is durable, exactly once,
    nothing else is in its dataset, and the writer's memory stayed bounded."""
    final = field.recorder.ctrl_c(timeout=180)  # still playing: it saw every attack
    field.alive()
    assert final["steps_durable"] == final["steps"] and final["steps_dropped"] == 0
    table = rows_table(field.data_dir, REAL_ENV)
    assert set(table.column("session_id").to_pylist()) == {final["session"]}
    steps = steps_by_episode(table)
    assert sum(len(s) for s in steps.values()) == final["steps"]
    assert all(sorted(s) == list(range(len(s))) for s in steps.values())
    assert load(field.data_dir, REAL_ENV).num_rows == table.num_rows
    rss_growth = field.rss_peak - field.rss_before
    assert rss_growth < 500, (field.rss_before, field.rss_peak)
    log = field.writer.log.read_text()
    assert "Traceback" not in log
    report("hostile peers beside a 60 FPS recorder", real_steps=final["steps"],
           real_durable=final["steps_durable"], late_frames=final["late_frames"],
           tick_p99_ms=final["tick_p99_ms"], writer_rss_growth_mb=round(rss_growth, 1),
           probe_ms_max=round(max(field.probe_ms), 1),
           probe_ms_p50=round(sorted(field.probe_ms)[len(field.probe_ms) // 2], 1))
