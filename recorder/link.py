"""The recorder's connection to the writer: sequence numbers, acks and resends over ZeroMQ.

Nothing here ever blocks the game: sends are non-blocking and whatever the socket does not take
now stays in the Outbox and goes out on a later `pump()`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import zmq

from recorder.outbox import Outbox
from shared import protocol as p
from shared.errors import ProtocolError
from shared.security import ClientKeys


@dataclass
class LinkStats:
    sent_messages: int = 0
    resends: int = 0
    steps_sent: int = 0
    last_ack_at: float = 0.0


class WriterLink:
    def __init__(self, endpoint: str, start: p.SessionStart, max_bytes: int,
                 resend_after: float = 2.0, curve: ClientKeys | None = None):
        self.endpoint = endpoint
        self.session = start.session
        self.action_space = start.action_space
        self.start_frames = p.to_frames(start)
        self.resend_after = resend_after
        self.outbox = Outbox(max_bytes)
        self.stats = LinkStats(last_ack_at=time.monotonic())
        self._context = zmq.Context.instance()
        self.socket = self._context.socket(zmq.DEALER)
        _apply_curve(self.socket, curve)
        # Backpressure: IMMEDIATE=1 queues nothing for a writer that is not connected and
        # NOBLOCK sends raise Again at the high-water mark instead of stalling the game; the
        # Outbox keeps every message until it is acknowledged. LINGER=0: unsent data is the
        # Outbox's to account for, never the socket's.
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        self.socket.setsockopt(zmq.SNDHWM, 256)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self.socket.connect(endpoint)
        self.outbox.add(self.start_frames, sum(len(f) for f in self.start_frames))

    # -- adding messages ----------------------------------------------------------------------

    def send_step(self, episode: int, step: int, seed: int, timestamp: float, action,
                  reward: float, terminated: bool, truncated: bool, frame: np.ndarray) -> bool:
        """Queue one step; False when the buffer was full and the step became part of a gap."""
        nbytes = frame.nbytes + 256
        if not self.outbox.has_room(nbytes):
            finished = self.outbox.drop_step(episode, step)
            if finished is not None:
                self._add_gap(finished)
            return False
        self._flush_gap()
        seq = self.outbox.next_seq
        msg = p.Step(self.session, seq, episode, step, seed, timestamp, action, float(reward),
                     bool(terminated), bool(truncated), list(frame.shape), frame.tobytes())
        self.outbox.add(p.to_frames(msg), nbytes, steps=1)
        self.stats.steps_sent += 1
        return True

    def send_episode_end(self, episode: int, step: int, seed: int, timestamp: float,
                         outcome: str, terminated: bool, truncated: bool,
                         frame: np.ndarray) -> None:
        self._flush_gap()
        msg = p.EpisodeEnd(self.session, self.outbox.next_seq, episode, step, seed, timestamp,
                           outcome, bool(terminated), bool(truncated), list(frame.shape),
                           frame.tobytes())
        self.outbox.add(p.to_frames(msg), frame.nbytes + 256)

    def send_session_end(self, reason: str) -> None:
        self._flush_gap()
        msg = p.SessionEnd(self.session, self.outbox.next_seq, reason, self.stats.steps_sent,
                           self.outbox.steps_dropped)
        self.outbox.add(p.to_frames(msg), 256)

    def _flush_gap(self) -> None:
        gap = self.outbox.take_gap()
        if gap is not None:
            self._add_gap(gap)

    def _add_gap(self, gap) -> None:
        msg = p.Gap(self.session, self.outbox.next_seq, gap.episode, gap.first_step,
                    gap.last_step, gap.count)
        self.outbox.add(p.to_frames(msg), 256)

    # -- moving messages ----------------------------------------------------------------------

    def pump(self, max_messages: int = 32) -> None:
        """Read acks and resend requests, then send up to `max_messages` (so a resend after a
        writer restart is spread over several frames instead of stalling one). Never blocks."""
        self._read_replies()
        now = time.monotonic()
        if self.outbox.in_flight and now - self.stats.last_ack_at > self.resend_after:
            # No word from the writer for a while (restarted, or our messages were lost): go
            # back to the last acknowledged message; the writer drops what it already has.
            self.stats.last_ack_at = now
            self.stats.resends += 1
            self.outbox.rewind(self.outbox.acked_seq + 1)
            self._send_raw(self.start_frames)
        for _ in range(max_messages):
            entry = self.outbox.next_unsent()
            if entry is None or not self._send_raw(entry.frames):
                break
            self.outbox.mark_sent()
            self.stats.sent_messages += 1

    def _send_raw(self, frames: list) -> bool:
        try:
            # copy=True: for 100-250 KB frames a memcpy is cheaper for the game loop than
            # pyzmq's zero-copy bookkeeping (measured: see docs/BENCHMARKS.md).
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=True)
            return True
        except zmq.Again:
            return False

    def _read_replies(self) -> None:
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = p.from_frames(frames)
            except ProtocolError:
                continue
            if getattr(msg, "session", None) != self.session:
                continue
            if isinstance(msg, p.Ack):
                if msg.seq > self.outbox.acked_seq:
                    self.outbox.ack(msg.seq)
                self.stats.last_ack_at = time.monotonic()
            elif isinstance(msg, p.Resend):
                self.stats.resends += 1
                self.stats.last_ack_at = time.monotonic()
                if msg.seq == 0:
                    self._send_raw(self.start_frames)
                self.outbox.rewind(msg.seq)

    def wait_for_room(self, nbytes: int, stall_timeout: float) -> None:
        """Headless pacing: wait while the buffer is full and the writer is still confirming.
        Gives up after `stall_timeout` seconds without an ack (the step then becomes a gap)."""
        while not self.outbox.has_room(nbytes + 256):
            if time.monotonic() - self.stats.last_ack_at > stall_timeout:
                return
            self.pump(max_messages=256)
            time.sleep(0.0005)

    def drain(self, timeout: float, on_wait=None) -> bool:
        """Pump until everything is acknowledged or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while self.outbox.unacked and time.monotonic() < deadline:
            self.pump(max_messages=256)
            if on_wait is not None:
                on_wait()
            time.sleep(0.002)
        return not self.outbox.unacked

    def close(self) -> None:
        self.socket.close(linger=0)




def _apply_curve(sock: zmq.Socket, curve: ClientKeys | None) -> None:
    if curve is not None:
        sock.curve_serverkey = curve.server_public
        sock.curve_publickey = curve.public
        sock.curve_secretkey = curve.secret


def probe_writer(endpoint: str, timeout: float,
                 curve: ClientKeys | None = None) -> p.HelloReply | None:
    """Ask whether a gymrec writer listens at `endpoint`; None when nobody answers in time
    (also when CURVE keys do not match: the writer then refuses the connection)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    _apply_curve(sock, curve)
    try:
        sock.connect(endpoint)
        nonce = int.from_bytes(os.urandom(6), "big")
        sock.send_multipart(p.to_frames(p.Hello(nonce, "probe")))
        deadline = time.monotonic() + timeout
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
