"""The recorder's side of the shared-memory pixel ring (`shared.shm` says what the writer
checks): create it, put frames in free slots, free them when the writer acknowledges them.

Reserving the memory is not on the way to the first frame. The file gets its full size at once
(sparse, so the writer's size check holds), the first `FIRST_SLOTS` slots are reserved
(`posix_fallocate`) and mapped in before the constructor returns, and a thread reserves and maps
the rest chunk by chunk, each chunk's slots becoming free as it is done. Both calls release the
GIL, so the game runs meanwhile (a 256 MB ring took ~0.2 s, before this, between the first reset
and the first step). A slot is handed out only once its memory is reserved: a /dev/shm that runs
out leaves the ring smaller, never a write into a hole (SIGBUS).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading

from shared.shm import HEADER_BYTES, ring_bytes, ring_mark, shm_path

FIRST_SLOTS = 32  # reserved before the first frame (~3 MB of Atari frames)
CHUNK_BYTES = 8 << 20  # then reserved by the thread this much at a time
_MADV_POPULATE_WRITE = 23  # Linux 5.14: map the pages in now, not at each first write


class PixelRing:
    """Frames in slots of `slot_bytes`; the caller checks `free` before `put`."""

    def __init__(self, session: str, slots: int, slot_bytes: int, owner_token: str):
        self.path = shm_path(session)
        self.slot_bytes = slot_bytes
        self.slots = slots
        size = ring_bytes(slots, slot_bytes)
        first = min(slots, FIRST_SLOTS)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(self._fd, size)
            os.posix_fallocate(self._fd, 0, HEADER_BYTES + first * slot_bytes)
            self._map = mmap.mmap(self._fd, size, flags=mmap.MAP_SHARED)
        except OSError:
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
            raise
        self._view = memoryview(self._map)
        self._address = _address_of(self._map)
        _populate(self._address, 0, HEADER_BYTES + first * slot_bytes)
        mark = ring_mark(owner_token)
        self._map[:len(mark)] = mark
        self._free = list(range(first - 1, -1, -1))
        self.reserved = first  # slots whose memory is reserved (all of them, in the end)
        self._closing = threading.Event()
        self._reserver = threading.Thread(target=self._reserve_rest, name="ring-reserve",
                                          daemon=True)
        self._reserver.start()

    @property
    def free(self) -> int:
        return len(self._free)

    def put(self, frame_bytes: memoryview) -> int:
        """Copy one frame into a free slot (the caller checked `free`) and return the slot."""
        slot = self._free.pop()
        start = HEADER_BYTES + slot * self.slot_bytes
        self._view[start:start + self.slot_bytes] = frame_bytes
        return slot

    def release(self, slots) -> None:
        self._free.extend(slots)

    def _reserve_rest(self) -> None:
        """The thread: reserve and map the slots after the first, a chunk at a time; newly
        reserved slots go to the far end of the free list (used after those free already)."""
        per_chunk = max(1, CHUNK_BYTES // self.slot_bytes)
        while self.reserved < self.slots and not self._closing.is_set():
            first, count = self.reserved, min(per_chunk, self.slots - self.reserved)
            offset, length = HEADER_BYTES + first * self.slot_bytes, count * self.slot_bytes
            try:
                os.posix_fallocate(self._fd, offset, length)
            except OSError:
                break  # /dev/shm is full: the ring stays this size
            _populate(self._address, offset, length)
            self._free[:0] = range(first + count - 1, first - 1, -1)
            self.reserved += count
        os.close(self._fd)

    def restore(self) -> bool:
        """Make the file again, filled from this mapping, if it is gone (a writer removes the
        ring of a session it gave up on). True when it did; OSError when /dev/shm is full."""
        if self.path.exists():
            return False
        self._closing.set()
        self._reserver.join()
        size = len(self._map)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
            fresh = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        except OSError:
            self.path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        fresh[:] = self._view
        self._view.release()
        self._map.close()
        self._map, self._view = fresh, memoryview(fresh)
        self._free[:0] = range(self.slots - 1, self.reserved - 1, -1)  # all reserved now
        self.reserved = self.slots
        return True

    def close(self) -> None:
        """Unmap and remove the file (the writer keeps its own mapping while it needs one)."""
        self._closing.set()
        self._reserver.join()
        self._view.release()
        self._map.close()
        self.path.unlink(missing_ok=True)


def _address_of(mapping: mmap.mmap) -> int:
    """Where `mapping` starts in memory (for madvise; the buffer export is let go at once)."""
    anchor = ctypes.c_char.from_buffer(mapping)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


_libc = ctypes.CDLL(None, use_errno=True)


def _populate(address: int, offset: int, length: int) -> None:
    """Map in `length` bytes from `offset` now (ctypes lets go of the GIL meanwhile); where the
    kernel cannot, they are mapped in at their first write instead."""
    start = offset - offset % mmap.PAGESIZE
    _libc.madvise(ctypes.c_void_p(address + start), ctypes.c_size_t(offset + length - start),
                  _MADV_POPULATE_WRITE)
