"""Frame pixels in shared memory, for a recorder and a writer on the same machine.

The recorder owns a file `/dev/shm/gymrec-<session>` of `slots` × H*W*C bytes; a StepBatch names
the slot of each step instead of carrying its pixels. The recorder reuses a slot only after the
writer has acknowledged the step in it (the ring doubles as the resend buffer), so the writer
can encode straight from the mapping: no copy through sockets and kernel buffers.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

SHM_DIR = Path("/dev/shm")
# Map every page up front: faulting them in one by one cost ~30 us per 100 KB frame in the loop.
_SHARED_POPULATED = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def shm_path(session: str) -> Path:
    """The ring's file; the name comes from the (validated, hex) session id only."""
    return SHM_DIR / f"gymrec-{session}"


def shm_available() -> bool:
    return SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK)


class PixelRing:
    """The recorder's side: create the ring, put frames in free slots, free them on ack."""

    def __init__(self, session: str, slots: int, slot_bytes: int):
        self.path = shm_path(session)
        self.slot_bytes = slot_bytes
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # Reserve the memory now: a sparse file on a full /dev/shm would kill the game
            # with SIGBUS at the first write instead of failing here, cleanly.
            os.posix_fallocate(fd, 0, slots * slot_bytes)
            self._map = mmap.mmap(fd, slots * slot_bytes, flags=_SHARED_POPULATED)
        except OSError:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)
        self._view = memoryview(self._map)
        self._free = list(range(slots - 1, -1, -1))

    @property
    def free(self) -> int:
        return len(self._free)

    def put(self, frame_bytes: memoryview) -> int:
        """Copy one frame into a free slot (the caller checked `free`) and return the slot."""
        slot = self._free.pop()
        start = slot * self.slot_bytes
        self._view[start:start + self.slot_bytes] = frame_bytes
        return slot

    def release(self, slots) -> None:
        self._free.extend(slots)

    def restore(self) -> bool:
        """Make the file again, filled from this mapping, if it is gone (a writer removes the
        ring of a session it gave up on). True when it did; OSError when /dev/shm is full."""
        if self.path.exists():
            return False
        size = len(self._map)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
            fresh = mmap.mmap(fd, size, flags=_SHARED_POPULATED)
        except OSError:
            self.path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        fresh[:] = self._view
        self._view.release()
        self._map.close()
        self._map, self._view = fresh, memoryview(fresh)
        return True

    def close(self) -> None:
        """Unmap and remove the file (the writer keeps its own mapping while it needs one)."""
        self._view.release()
        self._map.close()
        self.path.unlink(missing_ok=True)


class RingReader:
    """The writer's side: a read-only mapping of a recorder's ring."""

    def __init__(self, session: str, slots: int, slot_bytes: int):
        path = shm_path(session)
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size != slots * slot_bytes:
                raise OSError(f"{path} holds {size} bytes, expected {slots * slot_bytes}")
            self._map = mmap.mmap(fd, size, flags=_SHARED_POPULATED, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self.path = path
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._view = memoryview(self._map)

    def pixels(self, slot: int) -> memoryview:
        start = slot * self.slot_bytes
        return self._view[start:start + self.slot_bytes]

    def close(self, unlink: bool = False) -> None:
        try:
            self._view.release()
            self._map.close()
        except BufferError:
            pass  # an encoder still holds a view; the mapping goes with the process
        if unlink:
            self.path.unlink(missing_ok=True)
