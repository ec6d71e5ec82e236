"""The recorder's connection to the writer: sequence numbers, acks and resends over ZeroMQ.

Nothing here ever blocks the game: sends are non-blocking and whatever the socket does not take
now stays in the Outbox and goes out on a later `pump()`.

Who is at the other end is checked, not assumed: without CURVE, a step counts as durable only
when an Ack carries the proof of the writer's secret (DATA_DIR/.writer.secret, readable by this
user only; the first HelloReply on the connection says which DATA_DIR), so a program that took the
writer's port cannot make the recorder report frames durable. The session's owner token (made
here, sent in the SessionStart) keeps the session ours across reconnects and writer restarts.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from recorder.delivery.outbox import Outbox
from recorder.delivery.ring import PixelRing
from shared import protocol as p
from shared.errors import ProtocolError
from shared.images import FrameImages
from shared.schema import STEP_VALUES, EpisodeEndData, StepData
from shared.security import ClientKeys, new_token, proof_holds, read_writer_secret

# Steps per message for an agent recording as fast as it goes: per-message costs (a send here;
# decoding, checking, a pool hand-off, a batch of rows and its fsync there) are paid once per
# message. Breakout, two workers, against 64 (with the writer's batch of rows as large): 7% more
# frames a second, 7-9% less CPU a frame. A batch also ends at AGENT_BATCH_BYTES of frames and
# extras, so a message of large frames stays well under the writer's 64 MB message limit.
AGENT_BATCH_STEPS = p.MAX_BATCH
AGENT_BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class LinkStats:
    sent_messages: int = 0
    resends: int = 0
    steps_sent: int = 0
    last_ack_at: float = 0.0
    socket_full: int = 0  # sends the socket refused (no writer connected, or its queue full)
    reconnects: int = 0
    revived: int = 0  # times the writer had given up on this session and took it up again
    unproven_acks: int = 0  # acks without a valid proof of the writer's secret (ignored)


_step_values = operator.attrgetter(*(v.name for v in STEP_VALUES))  # a step's, as a tuple


class _Batch:
    """Steps collected for one StepBatch message (consecutive steps of one episode)."""

    def __init__(self, first: StepData):
        self.episode, self.first_step, self.seed = first.episode, first.step, first.seed
        self.start_state = first.start_state  # a step 0's (the outbox keeps it for resends)
        self.shape = list(first.frame.shape)
        self.count = 0
        self.rows: list[tuple] = []  # each step's STEP_VALUES (`values` turns them to lists)
        self.slots: list[int] = []
        self.pixels: list[bytes] = []  # raw pixels, or images (`hashes`: their frame hashes)
        self.hashes: list[str] = []
        self.extras = _shapes(first.extras)  # every step of a session has the same extras
        self.extra_data: list[list[bytes]] = []
        self.nbytes = 0  # its steps' frames and extras, in the ring or in the message
        self.started_at = time.monotonic()

    @property
    def values(self) -> dict[str, list]:
        """Each of STEP_VALUES as the list of its steps' values (StepBatch's fields; a batch
        is made with its first step, so it has one)."""
        columns = zip(*self.rows, strict=True)
        return {v.batch_name: list(c) for v, c in zip(STEP_VALUES, columns, strict=True)}

    def follows(self, step: StepData) -> bool:
        return step.episode == self.episode and step.step == self.first_step + self.count

    def add(self, step: StepData) -> None:
        self.rows.append(_step_values(step))
        if self.extras:
            self.extra_data.append(_extra_bytes(step.extras))
        self.count += 1


class WriterLink:
    """Sends a session's messages, keeps them until acknowledged, resends when asked.

    `batch_steps` > 1 groups consecutive steps into one StepBatch (fewer, larger messages: for
    agents that record as fast as they can). With `start.shm_slots` > 0 the pixels go through a
    shared-memory ring instead of the socket (recorder and writer on one machine).
    `encode_frames`: steps' frames are encoded here, in the caller's thread, and go as images
    (for headless agents with a core each, where the writer's encoding would only compete for
    the cores; never for a game loop a person waits on)."""

    def __init__(self, endpoint: str, start: p.SessionStart, max_bytes: int,
                 resend_after: float = 2.0, curve: ClientKeys | None = None,
                 batch_steps: int = 1, encode_frames: bool = False):
        if not 1 <= batch_steps <= p.MAX_BATCH:  # the writer would refuse every such message
            raise ValueError(f"batch_steps {batch_steps} is not within 1-{p.MAX_BATCH}")
        self.endpoint = endpoint
        self.batch_steps = batch_steps
        self.refused: str | None = None
        # Asked between waits for the writer (room, drain): True stops waiting (a 2nd Ctrl-C).
        self.give_up: Callable[[], bool] = lambda: False
        self.ring = None
        self.images = None
        if encode_frames:  # images are small: they go through the socket, not a ring
            self.images = FrameImages(start.frame_shape, start.codec, start.quality)
            start = dataclasses.replace(start, shm_slots=0)
        if not start.owner_token:
            start = dataclasses.replace(start, owner_token=new_token())
        if start.shm_slots:
            try:
                self.ring = PixelRing(start.session, start.shm_slots,
                                      math.prod(start.frame_shape), start.owner_token)
            except OSError:  # /dev/shm too small or not ours: pixels go through the socket
                start = dataclasses.replace(start, shm_slots=0)
        self._batch: _Batch | None = None
        self._start_pending = False
        self._hello_at = 0.0
        self.keepalive = 1.0  # seconds without an ack before the SessionStart goes out again
        self.batch_seconds = 0.1  # a partial batch leaves after this long at the latest
        self.reconnect_after = 4.0  # seconds without any reply before the socket is replaced
        # Replies (acks, resend requests) are read at most this often by `pump()`: asking the
        # socket whether one is there costs ~40 us in a loop that sleeps between frames (the
        # core wakes up cold), over half of what recording cost human play a frame at 60 fps
        # (docs/BENCHMARKS.md, game loop). Waiting for room or for the last acks reads at once.
        self.reply_interval = 0.1
        self._replies_at = 0.0
        self.session = start.session
        self.action_space = start.action_space
        self.start_frames = p.to_frames(start)
        self.resend_after = resend_after
        self.outbox = Outbox(max_bytes)
        self.stats = LinkStats(last_ack_at=time.monotonic())
        self._curve = curve
        # The writer's secret, once a HelloReply proved it (never needed under CURVE).
        self._secret: bytes | None = None
        self._hello_nonce = int.from_bytes(os.urandom(6), "big")
        self._asked_who_at = 0.0
        self._ring_gone = False  # the writer refused us for want of the ring: make it again
        self.socket = self._connect()
        self._connected_at = time.monotonic()
        self.outbox.add(self.start_frames, sum(len(f) for f in self.start_frames))

    def _connect(self) -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        _apply_curve(sock, self._curve)
        # Backpressure: IMMEDIATE=1 queues nothing for a writer that is not connected and
        # NOBLOCK sends raise Again at the high-water mark instead of stalling the game; the
        # Outbox keeps every message until it is acknowledged. LINGER=0: unsent data is the
        # Outbox's to account for, never the socket's.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.SNDHWM, 256)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.connect(self.endpoint)
        return sock

    # -- adding messages ----------------------------------------------------------------------

    def send_step(self, step: StepData) -> bool:
        """Queue one step; False when the buffer was full and the step became part of a gap."""
        frame = step.frame
        nbytes = frame.nbytes + _nbytes(step.extras) if step.extras else frame.nbytes
        if not self.has_room(nbytes):
            self._flush_batch()
            finished = self.outbox.drop_step(step.episode, step.step)
            if finished is not None:
                self._add_gap(finished)
            return False
        if self.ring is not None or self.batch_steps > 1 or self.images is not None:
            self._batch_step(step, nbytes)
            return True
        self._flush_gap()
        values = {v.name: getattr(step, v.name) for v in STEP_VALUES}
        msg = p.Step(session=self.session, seq=self.outbox.next_seq, episode=step.episode,
                     step=step.step, seed=step.seed, shape=list(frame.shape),
                     start_state=step.start_state,
                     pixels=frame.tobytes(), extras=_shapes(step.extras),
                     extra_data=_extra_bytes(step.extras), **values)
        self.outbox.add(p.to_frames(msg), nbytes + 256, steps=1)
        self.stats.steps_sent += 1
        return True

    def has_room(self, frame_bytes: int) -> bool:
        """`frame_bytes`: a step's pixels and extras (in a ring only its extras take room in
        the outbox, which a slot's worth of room bounds well enough)."""
        if self.ring is not None:
            return self.ring.free > 0
        held = self._batch.nbytes if self._batch is not None else 0  # not in the outbox yet
        return self.outbox.has_room(held + frame_bytes + 256)

    def _batch_step(self, step: StepData, nbytes: int) -> None:
        """Add `step` (`nbytes`: its frame and extras) to the batch being filled."""
        batch = self._batch
        if batch is not None and not batch.follows(step):
            self._flush_batch()
            batch = None
        if batch is None:
            self._flush_gap()
            batch = self._batch = _Batch(step)
        batch.add(step)
        if self.ring is not None:
            batch.slots.append(self.ring.put(memoryview(step.frame).cast("B")))
        elif self.images is not None:
            image, hashed = self.images.encode(np.ascontiguousarray(step.frame))
            batch.pixels.append(image)
            batch.hashes.append(hashed)
            nbytes += len(image) - step.frame.nbytes
        else:
            batch.pixels.append(step.frame.tobytes())
        batch.nbytes += nbytes
        self.stats.steps_sent += 1
        if batch.count >= self.batch_steps or batch.nbytes >= AGENT_BATCH_BYTES:
            self._flush_batch()

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        n = batch.count
        msg = p.StepBatch(session=self.session, seq=self.outbox.next_seq, episode=batch.episode,
                          first_step=batch.first_step, seed=batch.seed, shape=batch.shape,
                          start_state=batch.start_state,
                          slots=batch.slots, pixels=batch.pixels, frame_hashes=batch.hashes,
                          image_sizes=[len(image) for image in batch.pixels] if batch.hashes
                          else [], extras=batch.extras,
                          extra_data=batch.extra_data, **batch.values)
        nbytes = (256 * n + sum(len(px) for px in batch.pixels)
                  + sum(len(b) for step in batch.extra_data for b in step))
        self.outbox.add(p.to_frames(msg), nbytes, steps=n, count=n, slots=tuple(batch.slots))

    def send_episode_end(self, end: EpisodeEndData) -> None:
        self._flush_batch()
        self._flush_gap()
        msg = p.EpisodeEnd(session=self.session, seq=self.outbox.next_seq, episode=end.episode,
                           step=end.step, seed=end.seed, timestamp=end.timestamp,
                           outcome=end.outcome, terminated=bool(end.terminated),
                           truncated=bool(end.truncated), shape=list(end.frame.shape),
                           info=end.info, info_json=end.info_json,
                           pixels=end.frame.tobytes(), extras=_shapes(end.extras),
                           extra_data=_extra_bytes(end.extras))
        self.outbox.add(p.to_frames(msg), end.frame.nbytes + _nbytes(end.extras) + 256)

    def send_session_end(self, reason: str, fps_changes: list | None = None) -> None:
        """`fps_changes`: the speed key changes of human play ([episode, step, fps] each)."""
        self._flush_batch()
        self._flush_gap()
        msg = p.SessionEnd(session=self.session, seq=self.outbox.next_seq, reason=reason,
                           steps_sent=self.stats.steps_sent,
                           steps_dropped=self.outbox.steps_dropped,
                           fps_changes=list(fps_changes or []))
        self.outbox.add(p.to_frames(msg), 256)

    def _flush_gap(self) -> None:
        gap = self.outbox.take_gap()
        if gap is not None:
            self._add_gap(gap)

    def _add_gap(self, gap) -> None:
        msg = p.Gap(session=self.session, seq=self.outbox.next_seq, episode=gap.episode,
                    first_step=gap.first_step, last_step=gap.last_step, count=gap.count)
        self.outbox.add(p.to_frames(msg), 256)

    # -- moving messages ----------------------------------------------------------------------

    def pump(self, max_messages: int = 32, read_now: bool = False) -> None:
        """Read acks and resend requests (every `reply_interval` seconds, or now: `read_now`),
        then send up to `max_messages` (so a resend after a writer restart is spread over
        several frames instead of stalling one). Never blocks."""
        now = time.monotonic()
        if read_now or now - self._replies_at >= self.reply_interval:
            self._replies_at = now
            self._read_replies()
            now = time.monotonic()
        if self._batch is not None and now - self._batch.started_at > self.batch_seconds:
            self._flush_batch()  # a paused game still gets its last frames out
        if self.outbox.in_flight and now - self.stats.last_ack_at > self.resend_after:
            # No word from the writer for a while (restarted, or our messages were lost): go
            # back to the last acknowledged message; the writer drops what it already has.
            self.stats.last_ack_at = now
            self.stats.resends += 1
            self.outbox.rewind(self.outbox.acked_seq + 1)
            self._start_pending = True
        silent = now - self.stats.last_ack_at
        if silent > self.reconnect_after and now - self._connected_at > self.reconnect_after:
            # Belt and braces: a connection that has carried no reply for this long is
            # replaced (seen rarely: a DEALER that stayed deaf to a restarted writer).
            self.socket.close(linger=0)
            self.socket = self._connect()
            self._connected_at = now
            self.stats.reconnects += 1
            self.outbox.rewind(self.outbox.acked_seq + 1)
            self._start_pending = True
        if silent > self.keepalive and now - self._hello_at > self.keepalive:
            # Keepalive: a silent writer hears our SessionStart once a second. A restarted one
            # learns who we are at once (and answers with what it has); a live one keeps the
            # session open through a long pause instead of sealing it as abandoned.
            self._hello_at = now
            self._start_pending = True
        if self._curve is None and self._secret is None and now - self._asked_who_at > 0.25:
            # Ask who is there (answered before the ack of what we send next): see _proved.
            hello = p.to_frames(p.Hello(nonce=self._hello_nonce, version="link"))
            if not self._send_raw(hello):
                # Nothing goes before it: had the SessionStart gone out first (the connection
                # made between the two sends), its ack would have come before the proof.
                return
            self._asked_who_at = now
        if self._start_pending:
            if self._ring_gone:
                self._ring_gone = False
                self._restore_ring()
            # A writer that does not know us (restarted) must see the SessionStart before
            # anything else: until the socket takes it, send nothing else.
            if not self._send_raw(self.start_frames):
                return
            self._start_pending = False
        for _ in range(max_messages):
            entry = self.outbox.next_unsent()
            if entry is None or not self._send_raw(entry.frames):
                break
            self.outbox.mark_sent()
            self.stats.sent_messages += 1

    def _restore_ring(self) -> None:
        """A writer removes the ring of a session it gave up on (silent past its session
        timeout: this process was stopped, say). Our mapping still holds every unconfirmed
        frame: make the file again from it, so that the writer can take the session up again."""
        if self.ring is None:
            return
        try:
            if self.ring.restore():
                self.stats.revived += 1
        except OSError:
            pass  # no room in /dev/shm: the writer refuses the session, and says why

    def _send_raw(self, frames: list) -> bool:
        try:
            # copy=True: for 100-250 KB frames a memcpy is cheaper for the game loop than
            # pyzmq's zero-copy bookkeeping (measured: see docs/BENCHMARKS.md).
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=True)
            return True
        except zmq.Again:
            self.stats.socket_full += 1
            return False

    def _read_replies(self, limit: int = 64) -> None:
        """Handle up to `limit` replies (a burst after a writer restart is spread over ticks)."""
        for _ in range(limit):
            if not self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return  # cheaper than a receive that raises Again
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = p.from_frames(frames)
            except ProtocolError:
                continue
            if isinstance(msg, p.HelloReply) and msg.nonce == self._hello_nonce:
                self._check_writer(msg)
            if getattr(msg, "session", None) != self.session:
                continue
            if isinstance(msg, p.Ack):
                if not self._proved(msg):
                    self.stats.unproven_acks += 1
                    continue
                if msg.seq > self.outbox.acked_seq:
                    freed = self.outbox.ack(msg.seq)
                    if freed:
                        self.ring.release(freed)
                self.stats.last_ack_at = time.monotonic()
            elif isinstance(msg, p.Refused):
                if self.ring is not None and not self.ring.path.exists():
                    # It gave up on us (see _restore_ring). Only its word counts: a ring missing
                    # at any other time is one it removed after our session's end was durable.
                    self._start_pending = self._ring_gone = True
                else:
                    self.refused = msg.reason
            elif isinstance(msg, p.Resend):
                self.stats.resends += 1
                self.stats.last_ack_at = time.monotonic()
                if msg.seq == 0:
                    self._start_pending = True
                self.outbox.rewind(msg.seq)

    def _check_writer(self, reply: p.HelloReply) -> None:
        """Keep the writer's secret if the reply proves it; else nothing here is durable."""
        if self._curve is not None or self._secret is not None:
            return
        secret = read_writer_secret(Path(reply.data_dir))
        if secret is not None and proof_holds(secret, reply.proof, "hello", reply.nonce):
            self._secret = secret
        elif self.refused is None:
            self.refused = (f"the program at {self.endpoint} is not a gymrec writer of this "
                            f"user (it cannot prove it holds {reply.data_dir}/.writer.secret)")

    def _proved(self, ack: p.Ack) -> bool:
        """Under CURVE the connection itself proves the writer (its server key)."""
        if self._curve is not None:
            return True
        return self._secret is not None and proof_holds(self._secret, ack.proof, "ack",
                                                        ack.session, ack.seq)

    def wait_for_room(self, nbytes: int, stall_timeout: float) -> None:
        """Headless pacing: wait while the buffer is full and the writer is still confirming.
        Gives up after `stall_timeout` seconds without an ack (the step then becomes a gap)."""
        if self.has_room(nbytes):
            return
        self._flush_batch()  # its slots must be on their way before we wait for them
        while not self.has_room(nbytes) and self.refused is None and not self.give_up():
            if time.monotonic() - self.stats.last_ack_at > stall_timeout:
                return
            self.pump(max_messages=256, read_now=True)
            self._await_reply(0.005)

    def drain(self, timeout: float, on_wait=None) -> bool:
        """Pump until everything is acknowledged or `timeout` seconds pass."""
        self._flush_batch()
        deadline = time.monotonic() + timeout
        while (self.outbox.unacked and time.monotonic() < deadline and self.refused is None
               and not self.give_up()):
            self.pump(max_messages=256, read_now=True)
            if on_wait is not None:
                on_wait()
            self._await_reply(0.005)
        return not self.outbox.unacked

    def _await_reply(self, timeout: float) -> None:
        """Sleep until the writer says something (an ack frees room) or `timeout` seconds pass:
        a waiting recorder leaves the cores to the writer it waits for (polling every 0.5 ms,
        two waiting recorders took half the writer's speed on two cores)."""
        try:
            self.socket.poll(max(1, int(timeout * 1000)), zmq.POLLIN)
        except zmq.ZMQError:
            time.sleep(timeout)

    def close(self) -> None:
        self.socket.close(linger=0)
        if self.ring is not None:
            self.ring.close()




def _shapes(extras: dict) -> dict:
    """A step's extras on the wire: name → shape (their bytes follow as frames)."""
    return {name: list(array.shape) for name, array in extras.items()}


def _extra_bytes(extras: dict) -> list[bytes]:
    """Copies: the outbox keeps them for resends while the env moves on."""
    return [array.tobytes() for array in extras.values()]


def _nbytes(extras: dict) -> int:
    return sum(array.nbytes for array in extras.values())


def _apply_curve(sock: zmq.Socket, curve: ClientKeys | None) -> None:
    if curve is not None:
        sock.curve_serverkey = curve.server_public
        sock.curve_publickey = curve.public
        sock.curve_secretkey = curve.secret


def probe_writer(endpoint: str, timeout: float,
                 curve: ClientKeys | None = None) -> p.HelloReply | None:
    """Ask whether a gymrec writer listens at `endpoint`; None when nobody answers in time
    (also when CURVE keys do not match: the writer then refuses the connection). Whether the
    answer is a real writer's is `writer_proven`'s to say."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    # A DEALER left without a connection to queue on (libzmq drops it after some failed
    # handshakes) blocks a send for good: one probe of a CURVE writer without keys hung a test
    # for minutes. The send gets the probe's time, like the answer.
    sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout * 1000)))
    _apply_curve(sock, curve)
    try:
        sock.connect(endpoint)
        nonce = int.from_bytes(os.urandom(6), "big")
        deadline = time.monotonic() + timeout
        try:
            sock.send_multipart(p.to_frames(p.Hello(nonce=nonce, version="probe")))
        except zmq.Again:
            return None
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000) + 1):
                break
            try:
                msg = p.from_frames(sock.recv_multipart())
            except ProtocolError:
                continue
            if isinstance(msg, p.HelloReply) and msg.nonce == nonce:
                return msg
        return None
    finally:
        sock.close(linger=0)


def writer_proven(reply: p.HelloReply) -> bool:
    """True when a probe's reply proves the secret in its DATA_DIR (a private file of this
    user): the one writing there answered, not a program that took its port."""
    secret = read_writer_secret(Path(reply.data_dir))
    return secret is not None and proof_holds(secret, reply.proof, "hello", reply.nonce)
