"""The writer daemon: one ROUTER socket, a pool of encoder threads, durable per-session shards.

Life cycle: `Writer.create(settings)` takes the data-folder lock, recovers what a crash left and
binds the socket; `run()` serves until `stop()` (SIGTERM/SIGINT) or, for a writer that a recorder
started, until no session has been open for `exit_when_idle` seconds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import zmq

from shared import protocol as p
from shared.config import dataset_dir
from shared.errors import EndpointBusy, GymrecError, ProtocolError, StorageError, UsageError
from shared.layout import DatasetLayout
from shared.security import ServerKeys, is_loopback
from shared.spaces import validate_action
from shared.version import VERSION
from writer.encode import encode_frame, encode_frames
from writer.store.repair import repair_dataset
from writer.store.session import WriterSession
from writer.store.shards import ShardInfo

log = logging.getLogger("gymrec.writer")


@dataclass(frozen=True)
class WriterSettings:
    data_dir: Path
    endpoint: str
    encoders: int = 2
    batch_rows: int = 64
    batch_seconds: float = 0.05
    shard_rows: int = 10_000
    shard_bytes: int = 1024 * 1024 * 1024
    max_pending_frames: int = 512
    max_pending_bytes: int = 256 * 1024 * 1024
    max_sessions: int = 64
    max_message_bytes: int = 64 * 1024 * 1024
    session_timeout: float = 60.0
    exit_when_idle: float | None = None
    # Called in the writer's thread after each shard is sealed (e.g. to queue an upload).
    on_sealed: Callable[[DatasetLayout, ShardInfo], None] | None = None
    # Required to listen beyond loopback: encryption plus an allow-list of recorder keys.
    curve: ServerKeys | None = None


@dataclass
class WriterStats:
    messages: int = 0
    rejected: int = 0
    duplicates: int = 0
    rows: int = 0


class Writer:
    def __init__(self, settings: WriterSettings, socket: zmq.Socket, lock_fd: int,
                 authenticator=None, stop: threading.Event | None = None):
        self.settings = settings
        self.socket = socket
        self._lock_fd = lock_fd
        self._authenticator = authenticator
        self.sessions: dict[str, WriterSession] = {}
        self.stats = WriterStats()
        self.pool = ThreadPoolExecutor(settings.encoders, thread_name_prefix="encode")
        self._stop = stop if stop is not None else threading.Event()
        self._last_activity = time.monotonic()
        self._last_reject_log = 0.0
        self._served = False
        self._asked_to_start: dict[str, float] = {}  # session → when we last asked

    @classmethod
    def create(cls, settings: WriterSettings, stop: threading.Event | None = None) -> Writer:
        """`stop`: set (e.g. by a signal handler) to end `run()`, even before it starts."""
        data_dir = Path(settings.data_dir)
        if settings.curve is None and not is_loopback(settings.endpoint):
            raise UsageError(f"listening on {settings.endpoint} (beyond loopback) needs CURVE "
                             "keys: --curve-key and --allow-keys")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(data_dir / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot use data folder {data_dir}: {exc.strerror}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock_fd)
            raise StorageError(f"another gymrec-writer is using {data_dir}") from exc
        for root in sorted(data_dir.iterdir()):
            if (root / ".incoming").is_dir():
                layout = DatasetLayout(root)
                repair_dataset(layout)
        context = zmq.Context.instance()
        authenticator = _start_authenticator(context, settings.curve) if settings.curve else None
        socket = context.socket(zmq.ROUTER)
        if settings.curve is not None:
            socket.curve_server = True
            socket.curve_publickey = settings.curve.public
            socket.curve_secretkey = settings.curve.secret
        # Backpressure: the writer stops reading while `max_pending_frames` await encoding, so
        # ZeroMQ queues fill up to RCVHWM and recorders' non-blocking sends start failing; they
        # keep the data in their resend buffers. Oversize messages drop the peer (MAXMSGSIZE).
        # Replies to a peer that is gone are dropped by ROUTER (acks are idempotent).
        socket.setsockopt(zmq.RCVHWM, 1000)
        socket.setsockopt(zmq.SNDHWM, 10_000)
        socket.setsockopt(zmq.MAXMSGSIZE, settings.max_message_bytes)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.bind(settings.endpoint)
        except zmq.ZMQError as exc:
            socket.close()
            os.close(lock_fd)
            if authenticator is not None:
                authenticator.stop()
            if exc.errno == zmq.EADDRINUSE:
                raise EndpointBusy(f"endpoint {settings.endpoint} is already in use") from exc
            raise UsageError(f"cannot listen on {settings.endpoint}: {exc}") from exc
        return cls(settings, socket, lock_fd, authenticator, stop)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if self._has_room():
                    if poller.poll(5):
                        self._receive_some()
                else:
                    time.sleep(0.001)
                now = time.monotonic()
                for session in list(self.sessions.values()):
                    self._pump(session, now)
                self._expire_sessions(now)
                if self._idle_long_enough(now):
                    break
        finally:
            self._shutdown()

    # Shutdown order: stop reading; let the encoders finish what they hold; write and fsync
    # every complete row; acknowledge it; seal the shards; only then close the socket and pool.
    def _shutdown(self) -> None:
        for session in list(self.sessions.values()):
            try:
                session.wait_encoded()
                self._pump(session, time.monotonic())
                session.close("interrupted")
                self._ack(session)
            except (OSError, GymrecError) as exc:
                log.error("session %s: could not close cleanly: %s", session.id, exc)
        self.sessions.clear()
        log.warning("stopped: %d messages, %d rejected, %d duplicates", self.stats.messages,
                    self.stats.rejected, self.stats.duplicates)
        self.pool.shutdown(wait=True)
        self.socket.close(linger=200)
        if self._authenticator is not None:
            self._authenticator.stop()
        os.close(self._lock_fd)

    def _has_room(self) -> bool:
        """Read more only while the frames waiting to be encoded or written fit the limits."""
        frames = sum(s.pending_frames for s in self.sessions.values())
        held = sum(s.pending_bytes for s in self.sessions.values())
        return frames < self.settings.max_pending_frames and held < self.settings.max_pending_bytes

    def _idle_long_enough(self, now: float) -> bool:
        limit = self.settings.exit_when_idle
        if limit is None or self.sessions:
            return False
        # Before its first session, give the recorder that started us time to get going.
        return now - self._last_activity > (limit if self._served else max(limit, 60.0))

    def _receive_some(self) -> None:
        for _ in range(256):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.stats.messages += 1
            routing_id, body = frames[0].bytes, frames[1:]
            try:
                self._handle(routing_id, p.from_frames(body))
            except ProtocolError as exc:
                self._reject(exc)

    def _reject(self, exc: Exception) -> None:
        self.stats.rejected += 1
        now = time.monotonic()
        if now - self._last_reject_log > 1.0:
            self._last_reject_log = now
            log.warning("rejected message (%d so far): %s", self.stats.rejected, exc)

    def _handle(self, routing_id: bytes, msg: p.Message) -> None:
        if isinstance(msg, p.Hello):
            self._send(routing_id, p.HelloReply(nonce=msg.nonce, version=VERSION,
                                                data_dir=str(self.settings.data_dir)))
            return
        if isinstance(msg, p.SessionStart):
            self._start_session(routing_id, msg)
            return
        if not isinstance(msg, (p.Step, p.StepBatch, p.EpisodeEnd, p.Gap, p.SessionEnd)):
            raise ProtocolError(f"a recorder may not send {msg.TYPE}")
        self._last_activity = time.monotonic()
        session = self.sessions.get(msg.session)
        if session is None:
            now = time.monotonic()
            if msg.session not in self._asked_to_start:
                log.info("session %s: unknown here, asking for its start", msg.session)
            if len(self._asked_to_start) > 10_000:
                self._asked_to_start.clear()  # bounded: made-up session ids must not pile up
            if now - self._asked_to_start.get(msg.session, 0.0) > 0.2:
                self._asked_to_start[msg.session] = now
                # tell me who you are first
                self._send(routing_id, p.Resend(session=msg.session, seq=0))
            return
        session.routing_id = routing_id
        session.last_seen = time.monotonic()
        last_seq = msg.seq + msg.count - 1 if isinstance(msg, p.StepBatch) else msg.seq
        if last_seq < session.next_seq:
            self.stats.duplicates += 1
            if last_seq <= session.durable_seq and session.last_seen - session.last_dup_ack > 0.1:
                session.last_dup_ack = session.last_seen  # one reminder per burst of resends
                self._ack(session)
            return
        if msg.seq > session.next_seq:
            if session.last_seen - session.last_resend_request > 0.2:
                session.last_resend_request = session.last_seen
                self._send(routing_id, p.Resend(session=session.id, seq=session.next_seq))
            return
        if isinstance(msg, p.StepBatch):
            self._accept_batch(session, msg)
            return
        encoded = None
        if isinstance(msg, (p.Step, p.EpisodeEnd)):
            if list(msg.shape) != list(session.start.frame_shape):
                raise ProtocolError(f"frame shape {msg.shape} differs from the session's")
            if isinstance(msg, p.Step):
                validate_action(msg.action, session.start.action_space)
            encoded = self.pool.submit(
                encode_frame, msg.pixels, msg.shape, session.start.codec, session.start.quality
            )
        session.accept(msg.seq, msg, encoded)

    def _accept_batch(self, session: WriterSession, msg: p.StepBatch) -> None:
        if list(msg.shape) != list(session.start.frame_shape):
            raise ProtocolError(f"frame shape {msg.shape} differs from the session's")
        for action in msg.actions:
            validate_action(action, session.start.action_space)
        skip = session.next_seq - msg.seq  # a resent batch may overlap what is already here
        if msg.slots:
            if session.ring is None or max(msg.slots) >= session.ring.slots:
                raise ProtocolError("steps name shared-memory slots this session does not have")
            pixels = [session.ring.pixels(slot) for slot in msg.slots[skip:]]
        else:
            pixels = msg.pixels[skip:]
        start = session.start
        encoded = self.pool.submit(encode_frames, pixels, start.frame_shape, start.codec,
                                   start.quality)
        session.accept(msg.seq, msg, encoded, skip)

    def _start_session(self, routing_id: bytes, msg: p.SessionStart) -> None:
        self._last_activity = time.monotonic()
        session = self.sessions.get(msg.session)
        returning = session is not None  # a keepalive, or a recorder back after a silence
        if session is None:
            if len(self.sessions) >= self.settings.max_sessions:
                raise ProtocolError(f"over {self.settings.max_sessions} open sessions")
            try:
                layout = DatasetLayout(dataset_dir(self.settings.data_dir, msg.env_id))
            except UsageError as exc:
                raise ProtocolError(str(exc)) from exc
            returning = layout.session_file(msg.session).exists()  # resumed after a restart
            try:
                layout.create()
                session = WriterSession(
                    msg, layout, self.settings.batch_rows, self.settings.batch_seconds,
                    self.settings.shard_rows, self.settings.shard_bytes, self.settings.on_sealed,
                )
            except OSError as exc:
                log.error("session %s: cannot store it: %s", msg.session, exc)
                self._send(routing_id, p.Refused(
                    session=msg.session, reason=f"the writer cannot store this session: {exc}"))
                return
            self.sessions[msg.session] = session
            self._served = True
            log.info("session %s: %s from %s (resuming after seq %d)", msg.session, msg.env_id,
                     msg.collector, session.durable_seq)
        session.routing_id = routing_id
        session.last_seen = time.monotonic()
        self._ack(session)
        if returning and not session.pending:
            # Everything this writer received is durable, yet the recorder is re-announcing
            # itself: whatever it sent after `next_seq` never arrived (lost with a killed
            # writer). Ask for it, or a recorder whose every message was already sent would
            # wait forever, hearing acks of what is durable and nothing else.
            self._send(routing_id, p.Resend(session=session.id, seq=session.next_seq))

    def _pump(self, session: WriterSession, now: float) -> None:
        if now < session.retry_at:
            return
        try:
            advanced = session.pump(now)
        except OSError as exc:
            # Disk full or gone: nothing more is acknowledged, the rows stay buffered (and the
            # recorder keeps them too); try again shortly.
            if not session.retry_at:
                log.error("session %s: write failed, will retry: %s", session.id, exc)
            session.retry_at = now + 0.25
            return
        if session.retry_at:
            log.warning("session %s: writing again", session.id)
            session.retry_at = 0.0
        if advanced:
            self._ack(session)
        if session.ended and not session.pending:
            session.release_ring(unlink=True)
            del self.sessions[session.id]
            self._last_activity = now
            log.info("session %s ended at seq %d", session.id, session.durable_seq)

    def _expire_sessions(self, now: float) -> None:
        for session in list(self.sessions.values()):
            if now - session.last_seen > self.settings.session_timeout and not session.pending:
                log.warning("session %s: no message for %.0f s, sealed as aborted",
                            session.id, self.settings.session_timeout)
                session.close("aborted")
                del self.sessions[session.id]

    def _ack(self, session: WriterSession) -> None:
        self._send(session.routing_id, p.Ack(session=session.id, seq=session.durable_seq))

    def _send(self, routing_id: bytes, msg: p.Message) -> None:
        try:
            self.socket.send_multipart([routing_id, *p.to_frames(msg)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # peer gone or its queue is full: acks and resend requests are repeated anyway


def _start_authenticator(context: zmq.Context, keys: ServerKeys):
    """A ZAP handler that admits exactly the public keys found in `keys.allowed_dir`."""
    from zmq.auth.thread import ThreadAuthenticator

    if not keys.allowed_dir.is_dir() or not any(keys.allowed_dir.glob("*.key")):
        raise UsageError(f"no recorder public keys (*.key) in {keys.allowed_dir}")
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(keys.allowed_dir))
    return authenticator
