"""The writer daemon: one ROUTER socket, a pool of encoder threads, durable per-session shards.

Life cycle: `Writer.create(settings)` takes the data-folder lock, recovers what a crash left and
binds the socket; `run()` serves until `stop()` (SIGTERM/SIGINT) or, for a writer that a recorder
started, until no session has been open and no recorder has probed it (Hello) for
`exit_when_idle` seconds.

Every peer may be hostile (README, Security). No message stops the writer: a bad message is
refused and counted; a fault while handling one session fails that session only (one log line,
a Refused to its recorder). A session belongs to the connection that showed its owner token;
messages about it from any other connection are counted as foreign and answered only with "send
your SessionStart" (Resend 0). Each turn of the loop reads at most `turn_bytes` of frames, and a
session holding more than its share of pending frames waits for its earlier ones to be written.
"""

from __future__ import annotations

import fcntl
import logging
import math
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
from shared.errors import EndpointBusy, ProtocolError, StorageError, UsageError
from shared.layout import DatasetLayout
from shared.schema import check_action_fits, check_extras_fit, check_info_fits
from shared.security import ServerKeys, is_loopback, prove, writer_secret
from shared.spaces import validate_action
from shared.version import VERSION
from writer.store.repair import repair_dataset
from writer.store.session import (
    WriterSession,
    dataset_mismatch,
    owner_digest,
    resume_refusal,
    stored_session,
)
from writer.store.shards import ShardInfo

log = logging.getLogger("gymrec.writer")


@dataclass(frozen=True)
class WriterSettings:
    data_dir: Path
    endpoint: str
    encoders: int = 2
    batch_rows: int = 256  # rows per Arrow batch and fsync (or batch_seconds' worth)
    batch_seconds: float = 0.05
    shard_rows: int = 10_000
    shard_bytes: int = 1024 * 1024 * 1024
    max_pending_frames: int = 512
    max_pending_bytes: int = 256 * 1024 * 1024
    max_sessions: int = 64
    max_sessions_per_peer: int = 8  # open sessions one connection may hold
    max_message_bytes: int = 64 * 1024 * 1024
    max_frame_bytes: int = 16 * 1024 * 1024  # H*W*C of a session's frames
    # Fairness: frames read per turn of the loop, and the least share of pending frames a
    # session has when many compete (see _share).
    turn_bytes: int = 64 * 1024 * 1024
    session_pending_bytes: int = 32 * 1024 * 1024
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
    foreign: int = 0  # messages about a session from a connection that does not own it
    refused_sessions: int = 0
    failed_sessions: int = 0
    deferred: int = 0  # messages left unread for a session over its share (resent later)


class Writer:
    def __init__(self, settings: WriterSettings, socket: zmq.Socket, lock_fd: int,
                 secret: bytes, authenticator=None, stop: threading.Event | None = None):
        self.settings = settings
        self.socket = socket
        self._lock_fd = lock_fd
        self._secret = secret  # proves to local recorders that we write DATA_DIR (security.py)
        self._data_dir = os.path.abspath(settings.data_dir)  # where recorders find the secret
        self._authenticator = authenticator
        self.sessions: dict[str, WriterSession] = {}
        self.stats = WriterStats()
        self.pool = ThreadPoolExecutor(settings.encoders, thread_name_prefix="encode")
        self._stop = stop if stop is not None else threading.Event()
        self._last_activity = time.monotonic()
        self._last_reject_log = 0.0
        self._served = False
        self._asked_to_start: dict[tuple, float] = {}  # (peer, session) → when we last asked
        self._turn_bytes = 0  # frame bytes read in this turn of the loop

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
        try:
            secret = writer_secret(data_dir)
        except OSError as exc:
            os.close(lock_fd)
            raise StorageError(f"cannot use data folder {data_dir}: {exc}") from exc
        for root in sorted(data_dir.iterdir()):
            if not root.is_symlink() and (root / ".incoming").is_dir():
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
        # pyarrow imports pandas when it first builds an array: seconds without cached bytecode,
        # which at the first flush would stall the loop (every peer). Pay it beside the loop,
        # with what the first session's end needs (its card's statistics and preview).
        threading.Thread(target=_warm_up, daemon=True, name="warm-up").start()
        return cls(settings, socket, lock_fd, secret, authenticator, stop)

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
    # Nothing here raises: one session that cannot close must not keep the others open.
    def _shutdown(self) -> None:
        for session in list(self.sessions.values()):
            try:
                session.wait_encoded()
                self._pump(session, time.monotonic())
                if session.id in self.sessions:
                    session.close("interrupted")
                    self._ack(session)
            except Exception as exc:  # noqa: BLE001 - see above
                log.error("session %s: could not close cleanly: %s", session.id, exc)
        self.sessions.clear()
        s = self.stats
        log.warning("stopped: %d messages, %d rejected, %d duplicates, %d foreign, "
                    "%d sessions refused, %d failed", s.messages, s.rejected, s.duplicates,
                    s.foreign, s.refused_sessions, s.failed_sessions)
        for close in (lambda: self.pool.shutdown(wait=True),
                      lambda: self.socket.close(linger=200),
                      lambda: self._authenticator and self._authenticator.stop(),
                      lambda: os.close(self._lock_fd)):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - see above
                log.error("shutdown: %s", exc)

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
        """Read messages until the socket is empty, the writer is full or this turn has read
        `turn_bytes` of frames (so that one peer's big messages do not hold up the loop)."""
        self._turn_bytes = 0
        for _ in range(256):
            if self._turn_bytes >= self.settings.turn_bytes or not self._has_room():
                return
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.stats.messages += 1
            routing_id, body = frames[0].bytes, frames[1:]
            self._turn_bytes += sum(len(f) for f in body)
            try:
                msg = p.from_frames(body)
            except ProtocolError as exc:
                refused = p.refused_start_session(body)
                if refused is not None:
                    self._refuse(routing_id, refused, str(exc))
                else:
                    self._reject(exc)
                continue
            self._handle_safely(routing_id, msg)

    def _handle_safely(self, routing_id: bytes, msg: p.Message) -> None:
        try:
            self._handle(routing_id, msg)
        except ProtocolError as exc:
            self._reject(exc)
        except Exception as exc:  # noqa: BLE001 - a bug in one session's handling
            session = self.sessions.get(getattr(msg, "session", None))
            if session is None or session.routing_id != routing_id:
                self._reject(exc)
            else:
                self._fail(session, f"{type(exc).__name__}: {exc}")

    def _reject(self, exc: Exception) -> None:
        self.stats.rejected += 1
        now = time.monotonic()
        if now - self._last_reject_log > 1.0:
            self._last_reject_log = now
            log.warning("rejected message (%d so far): %s", self.stats.rejected, exc)

    def _handle(self, routing_id: bytes, msg: p.Message) -> None:
        if isinstance(msg, p.Hello):
            # A recorder that probed us is about to use us: never exit idle right after.
            self._last_activity = time.monotonic()
            self._send(routing_id, p.HelloReply(
                nonce=msg.nonce, version=VERSION, data_dir=self._data_dir,
                proof=prove(self._secret, "hello", msg.nonce)))
            return
        if isinstance(msg, p.SessionStart):
            self._start_session(routing_id, msg)
            return
        if not isinstance(msg, (p.Step, p.StepBatch, p.EpisodeEnd, p.Gap, p.SessionEnd)):
            raise ProtocolError(f"a recorder may not send {msg.TYPE}")
        self._last_activity = time.monotonic()
        session = self.sessions.get(msg.session)
        if session is None or session.routing_id != routing_id:
            # Unknown here (we restarted), or this connection has not shown the session's
            # owner token (the recorder reconnected, or a stranger): ask for the SessionStart.
            if session is not None:
                self.stats.foreign += 1
            self._ask_to_start(routing_id, msg.session)
            return
        session.last_seen = time.monotonic()
        last_seq = msg.seq + msg.count - 1 if isinstance(msg, p.StepBatch) else msg.seq
        if last_seq < session.next_seq:
            self.stats.duplicates += 1
            if last_seq <= session.durable_seq and session.last_seen - session.last_dup_ack > 0.1:
                session.last_dup_ack = session.last_seen  # one reminder per burst of resends
                self._ack(session)
            return
        if msg.seq > session.next_seq or (
                session.pending and session.pending_bytes > self._share()):
            # A gap in the sequence, or this session is over its share of the writer: ask for
            # the rest from next_seq (again once its earlier frames are written).
            if msg.seq <= session.next_seq:
                self.stats.deferred += 1
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
                _check_action(msg.action, session.start.action_space)
            check_info_fits(msg.info, session.start.info_columns)
            check_extras_fit(msg.extras, session.start.extras)
            encoded = self.pool.submit(session.encoder.encode, msg.pixels, msg.extra_data)
        session.accept(msg.seq, msg, encoded)

    def _share(self) -> int:
        """Pending frame bytes one session may hold before its next message waits: an equal
        part of the writer's room, never less than `session_pending_bytes` (alone, a session
        has it all: the room check stops reading first)."""
        return max(self.settings.session_pending_bytes,
                   self.settings.max_pending_bytes // max(1, len(self.sessions)))

    def _ask_to_start(self, routing_id: bytes, session_id: str) -> None:
        """Resend(0) ("tell me who you are first"), at most every 0.2 s per peer and session."""
        now = time.monotonic()
        key = (routing_id, session_id)
        if key not in self._asked_to_start:
            log.info("session %s: not this connection's here, asking for its start", session_id)
        if len(self._asked_to_start) > 10_000:
            self._asked_to_start.clear()  # bounded: made-up session ids must not pile up
        if now - self._asked_to_start.get(key, 0.0) > 0.2:
            self._asked_to_start[key] = now
            self._send(routing_id, p.Resend(session=session_id, seq=0))

    def _accept_batch(self, session: WriterSession, msg: p.StepBatch) -> None:
        if list(msg.shape) != list(session.start.frame_shape):
            raise ProtocolError(f"frame shape {msg.shape} differs from the session's")
        for action in msg.actions:
            _check_action(action, session.start.action_space)
        for info in msg.infos:
            check_info_fits(info, session.start.info_columns)
        check_extras_fit(msg.extras, session.start.extras)
        skip = session.next_seq - msg.seq  # a resent batch may overlap what is already here
        if msg.slots:
            if session.ring is None or max(msg.slots) >= session.ring.slots:
                raise ProtocolError("steps name shared-memory slots this session does not have")
            nbytes = (msg.count - skip) * session.ring.slot_bytes
            if nbytes > self.settings.max_message_bytes:
                raise ProtocolError(f"a batch of {msg.count} frames of "
                                    f"{session.ring.slot_bytes} bytes")
            # Read in the encoder, not here: a slot is reused only once its step is acknowledged,
            # after its row is written. A ring cut short fails the session when its turn comes.
            self._turn_bytes += nbytes
            encoded = self.pool.submit(session.encoder.encode_ring, session.ring,
                                       msg.slots[skip:], msg.extra_data[skip:])
        elif msg.frame_hashes:  # encoded by the recorder: checked (and extras made) in the pool
            images = msg.pixels[skip:]
            nbytes = sum(len(image) for image in images)
            encoded = self.pool.submit(session.encoder.take_images, images,
                                       msg.frame_hashes[skip:], msg.extra_data[skip:])
        else:
            pixels = msg.pixels[skip:]
            nbytes = sum(len(px) for px in pixels)
            encoded = self.pool.submit(session.encoder.encode_many, pixels,
                                       msg.extra_data[skip:])
        session.accept(msg.seq, msg, encoded, skip, nbytes)

    def _start_session(self, routing_id: bytes, msg: p.SessionStart) -> None:
        self._last_activity = time.monotonic()
        session = self.sessions.get(msg.session)
        if session is not None and session.routing_id != routing_id:
            # The owner back on a new connection, or someone else: only the token tells.
            if not session.owner or owner_digest(msg) != session.owner:
                self.stats.foreign += 1
                self._refuse(routing_id, msg.session, "this session belongs to another "
                             "recorder (its owner token differs)")
                return
        returning = session is not None  # a keepalive, or a recorder back after a silence
        if session is None:
            opened = self._open_session(routing_id, msg)
            if opened is None:
                return
            session, returning = opened  # returning: resumed after a restart
        session.routing_id = routing_id
        session.last_seen = time.monotonic()
        self._ack(session)
        if returning and not session.pending:
            # Everything this writer received is durable, yet the recorder is re-announcing
            # itself: whatever it sent after `next_seq` never arrived (lost with a killed
            # writer). Ask for it, or a recorder whose every message was already sent would
            # wait forever, hearing acks of what is durable and nothing else.
            self._send(routing_id, p.Resend(session=session.id, seq=session.next_seq))

    def _open_session(self, routing_id: bytes,
                      msg: p.SessionStart) -> tuple[WriterSession, bool] | None:
        """A session new to this writer: created, or resumed from its file by its owner (then
        True). None (after a Refused to the peer) when it may not be."""
        if len(self.sessions) >= self.settings.max_sessions:
            return self._refuse(routing_id, msg.session,
                                f"the writer has {self.settings.max_sessions} open sessions")
        mine = sum(s.routing_id == routing_id for s in self.sessions.values())
        if mine >= self.settings.max_sessions_per_peer:
            return self._refuse(routing_id, msg.session, f"this connection has {mine} open "
                                "sessions already")
        frame_bytes = math.prod(msg.frame_shape)
        if frame_bytes > self.settings.max_frame_bytes:
            return self._refuse(routing_id, msg.session, f"frames of {frame_bytes} bytes "
                                f"(this writer takes up to {self.settings.max_frame_bytes})")
        try:
            layout = DatasetLayout(dataset_dir(self.settings.data_dir, msg.env_id))
        except UsageError as exc:
            return self._refuse(routing_id, msg.session, str(exc))
        stored = stored_session(layout, msg.session)
        if stored is not None:
            refusal = resume_refusal(stored, msg)
            if refusal == "ended":  # its end is durable: say so, never reopen it
                self._ack_seq(routing_id, msg.session, stored["last_control_seq"])
                return None
            if refusal:
                self.stats.foreign += 1
                return self._refuse(routing_id, msg.session, refusal)
        else:
            open_here = [s.start for s in self.sessions.values() if s.layout == layout]
            mismatch = dataset_mismatch(layout, msg, open_here)
            if mismatch:
                return self._refuse(routing_id, msg.session, mismatch)
        try:
            layout.create()
            session = WriterSession(
                msg, layout, self.settings.batch_rows, self.settings.batch_seconds,
                self.settings.shard_rows, self.settings.shard_bytes, self.settings.on_sealed,
            )
        except (OSError, ProtocolError) as exc:
            log.error("session %s: cannot store it: %s", msg.session, exc)
            return self._refuse(routing_id, msg.session,
                                f"the writer cannot store this session: {exc}")
        self.sessions[msg.session] = session
        self._served = True
        log.info("session %s: %s from %s (resuming after seq %d)", msg.session, msg.env_id,
                 msg.collector, session.durable_seq)
        return session, stored is not None

    def _refuse(self, routing_id: bytes, session_id: str, reason: str) -> None:
        """Tell a peer its SessionStart is refused (always: silence would leave it waiting)."""
        self.stats.refused_sessions += 1
        now = time.monotonic()
        if now - self._last_reject_log > 1.0:
            self._last_reject_log = now
            log.warning("session %s refused (%d so far): %s", session_id,
                        self.stats.refused_sessions, reason)
        self._send(routing_id, p.Refused(session=session_id, reason=reason[:1000]))

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
        except ProtocolError as exc:  # its frames could not be read (a ring cut short)
            self._fail(session, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a fault in one session fails that one only
            self._fail(session, f"its rows cannot be stored: {type(exc).__name__}: {exc}")
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
            session.finish_card()  # acknowledged above: its recorder is on its way out

    def _expire_sessions(self, now: float) -> None:
        for session in list(self.sessions.values()):
            if now - session.last_seen > self.settings.session_timeout and not session.pending:
                log.warning("session %s: no message for %.0f s, sealed as aborted",
                            session.id, self.settings.session_timeout)
                del self.sessions[session.id]
                try:
                    session.close("aborted")
                except Exception as exc:  # noqa: BLE001 - its rows are durable already
                    log.error("session %s: could not close cleanly: %s", session.id, exc)

    def _fail(self, session: WriterSession, reason: str) -> None:
        """Give up on one session after a fault in its handling; the writer goes on."""
        self.stats.failed_sessions += 1
        log.error("session %s: failed, no longer recorded: %s", session.id, reason)
        self.sessions.pop(session.id, None)
        session.fail()
        self._send(session.routing_id, p.Refused(
            session=session.id, reason=f"the writer gave up on this session: {reason}"[:1000]))

    def _ack(self, session: WriterSession) -> None:
        self._ack_seq(session.routing_id, session.id, session.durable_seq)

    def _ack_seq(self, routing_id: bytes, session_id: str, seq: int) -> None:
        proof = prove(self._secret, "ack", session_id, seq)
        self._send(routing_id, p.Ack(session=session_id, seq=seq, proof=proof))

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


def _check_action(value, action_space: dict) -> None:
    """A valid action of the session's space whose values fit the action column."""
    validate_action(value, action_space)
    check_action_fits(value, action_space)


def _warm_up() -> None:
    """Import, beside the loop, what its first flush, seal and card would otherwise import in
    it (~0.25 s in all: a recorder waits for its session's end, card included)."""
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401 - a shard's seal
    from PIL import Image, WebPImagePlugin  # noqa: F401 - the card's preview

    import writer.summary.collect  # noqa: F401
    import writer.summary.pictures  # noqa: F401

    pa.array([0])
