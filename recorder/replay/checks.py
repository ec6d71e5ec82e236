"""Exact comparison of replayed frames with the recording: by raw-frame hash, and with the stored
image bytes (inline, or in a helper process).

Hash: the row's `frame_hash` (xxh3-128 of the raw pixels the writer got, `shared.frame_hash`) is
compared with the replayed frame's, inline (~3 µs a frame): codec-independent and cheap. Images
(`--check image`, and always for rows without a hash, written before gymrec stored one):
JPEG: the replayed frame is encoded exactly as the writer encoded the original
(`shared.codec.encode_frame`; libjpeg-turbo is deterministic) and the bytes compared. PNG: the
stored image is decoded (lossless) and the raw pixels compared.

Encoding every frame costs about as much as stepping the env, and threads do not help: the env
step holds the GIL (ALE, Retro), so a checker thread waits out the 5 ms switch interval at each
frame. The helper process has its own GIL: frames go through a shared-memory ring (one copy each),
stored bytes and results through a pipe, in chunks; a reader thread in the helper drains the pipe
so the replay never blocks on a send. In flight: at most RING_SLOTS frames.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
from collections import deque
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Protocol

import numpy as np

from recorder.replay.images import pixel_difference
from shared.codec import codec_for, decode_frame, encode_frame
from shared.errors import GymrecError
from shared.frame_hash import frame_hash

RING_SLOTS = 128  # frames in flight at most (shared memory: 128 × 230 KB for Doom)
CHUNK = 32  # frames per message to the helper, at most
MESSAGE_BYTES = 128 * 1024  # stored bytes per message, at most: fits a socket buffer, so sends
# return at once instead of waiting for the helper to read (JPEG Doom frames are ~48 KB each)


@dataclass(frozen=True)
class FrameCompare:
    """How one session's frames compare: its codec, JPEG quality and frame shape."""

    codec: str
    quality: int
    shape: tuple[int, int, int]

    @property
    def method(self) -> str:
        codec = codec_for(self.codec)
        if not codec.lossless:
            return (f"{self.codec.upper()} bytes: replayed frames re-encoded like the writer "
                    f"({codec.settings(self.quality)}) and compared byte for byte")
        return (f"raw pixels: recorded {self.codec.upper()}s decoded (lossless) and compared "
                "pixel for pixel")

    def same(self, recorded: bytes, frame: np.ndarray) -> bool:
        if frame.shape != self.shape:
            return False
        if not codec_for(self.codec).lossless:
            return encode_frame(frame, list(self.shape), self.codec, self.quality) == recorded
        return np.array_equal(decode_frame(recorded, self.codec, self.shape[2]), frame)

    def views(self, recorded: bytes, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(recorded pixels, replayed pixels) as the codec sees them: for JPEG the replayed frame
        goes through the same encoder, so equal frames show no difference at all."""
        stored = decode_frame(recorded, self.codec, self.shape[2])
        if not codec_for(self.codec).lossless and frame.shape == self.shape:
            frame = decode_frame(encode_frame(frame, list(self.shape), self.codec, self.quality),
                                 self.codec, self.shape[2])
        return stored, frame


Views = tuple[np.ndarray, np.ndarray]
Checked = tuple[int, bool, int, Views | None]  # frame index, same, largest difference, views


def check_frames(compare: FrameCompare, items: list[tuple[int, bytes, np.ndarray]]
                 ) -> list[Checked]:
    """Compare (index, recorded bytes, replayed frame) items; the views of the first differing
    one only (every later frame of a diverged episode differs too)."""
    out: list[Checked] = []
    keep_views = True
    for index, recorded, frame in items:
        if compare.same(recorded, frame):
            out.append((index, True, 0, None))
            continue
        views = compare.views(recorded, frame)
        out.append((index, False, pixel_difference(*views), views if keep_views else None))
        keep_views = False
    return out


@dataclass
class FrameTally:
    """What the comparison of one episode's frames found."""

    compared: int = 0
    differing: int = 0
    first_bad: int | None = None  # row (= frame index) of the first differing frame
    max_diff: int = 0
    first_bad_views: Views | None = None

    def add(self, checked: list[Checked]) -> None:
        for index, same, diff, views in checked:
            self.compared += 1
            if same:
                continue
            self.differing += 1
            self.max_diff = max(self.max_diff, diff)
            if self.first_bad is None or index < self.first_bad:
                self.first_bad, self.first_bad_views = index, views


@dataclass
class HashTally:
    """Replayed frames' hashes against the recorded ones (inline: ~3 µs a frame). The first
    differing frame's stored and replayed pictures are kept for the divergence picture."""

    compared: int = 0
    differing: int = 0
    first_bad: int | None = None  # row (= frame index) of the first frame whose hash differs
    max_diff: int = 0  # largest pixel difference of that frame against its stored image
    first_bad_views: Views | None = None

    def check(self, index: int, recorded_hash: str, recorded_image: bytes, frame: np.ndarray,
              compare: FrameCompare) -> None:
        self.compared += 1
        if frame.shape == compare.shape and frame_hash(frame) == recorded_hash:
            return
        self.differing += 1
        if self.first_bad is None:
            self.first_bad = index
            try:
                self.first_bad_views = compare.views(recorded_image, frame)
                self.max_diff = pixel_difference(*self.first_bad_views)
            except (ValueError, OSError):  # an undecodable stored image: the hash verdict stands
                self.first_bad_views = None


class FrameChecks(Protocol):
    """Takes frames as the replay makes them; `finish_episode` returns what they showed."""

    compare: FrameCompare

    def start_episode(self, compare: FrameCompare) -> None: ...

    def submit(self, index: int, recorded: bytes, frame: np.ndarray) -> None: ...

    def finish_episode(self) -> FrameTally: ...

    def close(self) -> None: ...


class InlineChecks:
    """Compares each frame at once, in the replay's own thread (used with --render)."""

    def __init__(self, compare: FrameCompare):
        self.compare = compare
        self.tally = FrameTally()

    def start_episode(self, compare: FrameCompare) -> None:
        self.compare, self.tally = compare, FrameTally()

    def submit(self, index: int, recorded: bytes, frame: np.ndarray) -> None:
        self.tally.add(check_frames(self.compare, [(index, recorded, frame)]))

    def finish_episode(self) -> FrameTally:
        return self.tally

    def close(self) -> None:
        pass


class ProcessChecks:
    """Compares frames in a helper process while the env keeps stepping. Start once, use for
    every session; `close()` (idempotent) stops the helper and frees the ring. The helper is
    spawned, so a script that uses this needs the `if __name__ == "__main__":` guard."""

    def __init__(self, compare: FrameCompare):
        self.compare = compare
        self.tally = FrameTally()
        ctx = mp.get_context("spawn")  # never fork a process that holds an emulator
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_helper_main, args=(child,), daemon=True,
                                 name="gymrec-replay-check")
        self._proc.start()
        child.close()
        self._ring: np.ndarray | None = None
        self._shm: shared_memory.SharedMemory | None = None
        self._next_slot = 0
        self._chunk: list[tuple[int, int, bytes]] = []
        self._chunk_bytes = 0
        self._in_flight: deque[int] = deque()  # frames per message sent, oldest first
        self._in_flight_frames = 0
        self._sent_compare: FrameCompare | None = None

    def start_episode(self, compare: FrameCompare) -> None:
        self.compare, self.tally = compare, FrameTally()
        if self._ring is None or self._ring.shape[1:] != compare.shape:
            self._new_ring(compare.shape)
        if compare != self._sent_compare:
            self._conn.send(("compare", compare))
            self._sent_compare = compare

    def submit(self, index: int, recorded: bytes, frame: np.ndarray) -> None:
        if frame.shape != self.compare.shape:  # cannot go through the ring; rare, so inline
            self.tally.add(check_frames(self.compare, [(index, recorded, frame)]))
            return
        # Slots are used in turn and checked in order: the next one is free once fewer than
        # RING_SLOTS frames are pending.
        while self._in_flight_frames + len(self._chunk) >= RING_SLOTS:
            self._receive()
        slot, self._next_slot = self._next_slot, (self._next_slot + 1) % RING_SLOTS
        self._ring[slot] = frame  # the one copy; the env may reuse its own buffer
        self._chunk.append((index, slot, recorded))
        self._chunk_bytes += len(recorded)
        if len(self._chunk) >= CHUNK or self._chunk_bytes >= MESSAGE_BYTES:
            self._send_chunk()

    def finish_episode(self) -> FrameTally:
        self._send_chunk()
        while self._in_flight:
            self._receive()
        return self.tally

    def close(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            self._conn.send(None)
        except OSError:
            pass
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join()
        self._conn.close()
        self._free_ring()

    def _send_chunk(self) -> None:
        if not self._chunk:
            return
        self._conn.send(("check", self._chunk))
        self._in_flight.append(len(self._chunk))
        self._in_flight_frames += len(self._chunk)
        self._chunk, self._chunk_bytes = [], 0

    def _receive(self) -> None:
        try:
            result = self._conn.recv()
        except EOFError:
            raise GymrecError("the frame-check helper process died") from None
        if isinstance(result, str):
            raise GymrecError(f"the frame-check helper failed: {result}")
        self._in_flight_frames -= self._in_flight.popleft()
        self.tally.add(result)

    def _new_ring(self, shape: tuple[int, int, int]) -> None:
        while self._in_flight:
            self._receive()
        self._free_ring()
        self._shm = shared_memory.SharedMemory(create=True,
                                               size=RING_SLOTS * int(np.prod(shape)))
        self._ring = np.ndarray((RING_SLOTS, *shape), np.uint8, buffer=self._shm.buf)
        self._conn.send(("ring", self._shm.name, shape))
        self._next_slot = 0

    def _free_ring(self) -> None:
        if self._shm is not None:
            self._ring = None
            self._shm.close()
            self._shm.unlink()
            self._shm = None


def frame_checks(compare: FrameCompare, helper_process: bool) -> FrameChecks:
    """A helper process when asked for and there is a second core for it, else inline."""
    if helper_process and len(os.sched_getaffinity(0)) > 1:
        return ProcessChecks(compare)
    return InlineChecks(compare)


# -- the helper process ------------------------------------------------------------------------


def _helper_main(conn) -> None:
    """Compare chunks in order until told to stop (None) or the replay goes away (EOF)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the replay's to handle
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def drain() -> None:  # keeps the pipe empty, so the replay's sends never wait on us
        try:
            while True:
                message = conn.recv()
                inbox.put(message)
                if message is None:
                    return
        except Exception:  # EOF (the replay went away), or a message cut by its Ctrl-C
            inbox.put(None)

    threading.Thread(target=drain, daemon=True).start()
    shm = ring = compare = None
    try:
        while (message := inbox.get()) is not None:
            kind, body = message[0], message[1:]
            if kind == "ring":
                if shm is not None:
                    ring = None
                    shm.close()
                name, shape = body
                # Shares the replay's resource tracker, so attaching adds nothing to clean up;
                # the replay unlinks the ring.
                shm = shared_memory.SharedMemory(name=name)
                ring = np.ndarray((RING_SLOTS, *shape), np.uint8, buffer=shm.buf)
            elif kind == "compare":
                (compare,) = body
            else:
                (chunk,) = body
                conn.send(check_frames(compare, [(i, rec, ring[slot]) for i, slot, rec in chunk]))
    except Exception as exc:  # reported to the replay, which raises it
        try:
            conn.send(f"{type(exc).__name__}: {exc}")
        except OSError:
            pass
    finally:
        ring = None
        if shm is not None:
            shm.close()


# -- extra observations (`--record`): RAM and VizDoom's buffers ------------------------------


def recorded_extra(value: object, shape: list) -> np.ndarray | None:
    """A stored extra as its uint8 array: a sequence (a list, or an array) as it is, an image
    (a PNG's bytes) decoded; None where the row holds none."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        import io

        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(value)), dtype=np.uint8).reshape(shape)
    return np.asarray(value, dtype=np.uint8).reshape(shape)


def extra_difference(name: str, recorded: np.ndarray, replayed: np.ndarray) -> str | None:
    """How a replayed extra differs from the recorded one, in words naming the first differing
    byte ("RAM byte 0x3a differs (recorded 0x10, replayed 0x11)"); None when equal."""
    if recorded.shape != replayed.shape:
        return f"{name} shape differs (recorded {recorded.shape}, replayed {replayed.shape})"
    differs = recorded != replayed
    if not differs.any():
        return None
    where = np.unravel_index(int(np.argmax(differs)), differs.shape)
    was, now = int(recorded[where]), int(replayed[where])
    if recorded.ndim == 1:
        label = "RAM" if name == "ram" else name
        return f"{label} byte 0x{where[0]:02x} differs (recorded 0x{was:02x}, replayed 0x{now:02x})"
    pixel = ", ".join(str(int(i)) for i in where)
    return (f"{name} differs at ({pixel}) (recorded {was}, replayed {now}; "
            f"{int(differs.sum())} values differ)")
