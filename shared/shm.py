"""Frame pixels in shared memory, for a recorder and a writer on the same machine.

The recorder owns a file `/dev/shm/gymrec-<session>` (`recorder.delivery.ring`): a header page,
then `slots` slots of H*W*C bytes; a StepBatch names the slot of each step instead of carrying
its pixels. The recorder reuses a slot only after the writer has acknowledged the step in it
(the ring doubles as the resend buffer); the writer reads the frames from the file (one `pread`
each, in its encoder threads), not the socket.

The file is anyone's to make, so the writer trusts nothing about it: it opens it without
following a symlink and without blocking (a FIFO), takes only a regular file with one link and
exactly the declared size, and reads with `pread` (a file truncated later gives a short read,
never a SIGBUS, and nothing stays mapped). The first page holds a digest of the session's owner
token (`ring_mark`): only the recorder that started the session can have written it, so a ring
someone else made (or hard-linked) for another's session id is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.errors import ProtocolError

SHM_DIR = Path("/dev/shm")
HEADER_BYTES = 4096  # the first page: the owner mark; slot k starts at HEADER_BYTES + k * size


def shm_path(session: str) -> Path:
    """The ring's file; the name comes from the (validated, hex) session id only."""
    return SHM_DIR / f"gymrec-{session}"


def ring_bytes(slots: int, slot_bytes: int) -> int:
    """The exact size of a ring file."""
    return HEADER_BYTES + slots * slot_bytes


def ring_mark(owner_token: str) -> bytes:
    """What a ring's first bytes hold: a digest of its session's owner token (never the token,
    which the writer keeps as a hash of its own)."""
    return hashlib.sha256(b"gymrec-ring\0" + owner_token.encode()).digest()


def shm_available() -> bool:
    return SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK)


class RingReader:
    """The writer's side: an open file descriptor on a recorder's ring, checked, read by pread.

    Raises ProtocolError (naming what is wrong) for a ring that is not what its session says.
    Encoder threads read from it (`reading()`, then `read_into`) while the writer's loop may
    `close()` it: the descriptor is closed once the last reader is done, so a number the OS
    hands out again is never read by mistake."""

    def __init__(self, session: str, slots: int, slot_bytes: int, owner_token: str):
        path = shm_path(session)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise ProtocolError(f"shared-memory ring {path}: {exc.strerror}") from exc
        try:
            _check_ring(fd, path, ring_bytes(slots, slot_bytes), ring_mark(owner_token))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._lock = threading.Lock()
        self._readers = 0
        self._closed = False
        self.path = path
        self.slots = slots
        self.slot_bytes = slot_bytes

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Keep the descriptor open while `read_into` runs in this block (ProtocolError when
        the ring is closed already: its session is over)."""
        with self._lock:
            if self._closed:
                raise ProtocolError(f"shared-memory ring {self.path} is closed")
            self._readers += 1
        try:
            yield
        finally:
            with self._lock:
                self._readers -= 1
                if self._closed and not self._readers:
                    self._close_fd()

    def read_into(self, slot: int, out) -> None:
        """Copy one slot's frame into `out` (a writable buffer of `slot_bytes`), inside
        `reading()`. ProtocolError if the file was cut short since, or cannot be read."""
        try:
            n = os.preadv(self._fd, [out], HEADER_BYTES + slot * self.slot_bytes)
        except OSError as exc:
            raise ProtocolError(f"shared-memory ring {self.path}: {exc.strerror}") from exc
        if n != self.slot_bytes:
            raise ProtocolError(f"shared-memory ring {self.path} was truncated")

    def close(self, unlink: bool = False) -> None:
        with self._lock:
            self._closed = True
            if not self._readers:
                self._close_fd()
        if unlink:
            self.path.unlink(missing_ok=True)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _check_ring(fd: int, path: Path, size: int, mark: bytes) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ProtocolError(f"shared-memory ring {path} is not a regular file")
    if info.st_nlink != 1:
        raise ProtocolError(f"shared-memory ring {path} has {info.st_nlink} links")
    if info.st_size != size:
        raise ProtocolError(f"shared-memory ring {path} holds {info.st_size} bytes, "
                            f"expected {size}")
    if os.pread(fd, len(mark), 0) != mark:
        raise ProtocolError(f"shared-memory ring {path} is not this session's owner's")
