"""Small helpers for files that must survive a crash: atomic JSON, fsync of folders, checksums.

A shard's checksum in the manifest is its xxh3-128 (`CHECKSUM`): it is there to catch damage
(bit rot, a torn copy), not a forger, and hashing at ~25 GB/s instead of sha256's ~1.7 costs the
writer nothing it can feel (sha256 was 2-3 % of all CPU while recording). Manifests written
before keep their "sha256" entries, which are still checked (`checksum_matches`).
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
from pathlib import Path

import xxhash


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, value: object) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover, or a symlink planted there: never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with open(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path, default: object = None) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


CHECKSUM = "xxh3_128"  # the manifest key of a shard's checksum (older manifests: "sha256")
_DIGESTS = {"xxh3_128": xxhash.xxh3_128, "sha256": hashlib.sha256}


def file_checksum(path: Path, kind: str = CHECKSUM) -> str:
    """The hex digest of a file's bytes (`kind`: "xxh3_128" or "sha256")."""
    digest = _DIGESTS[kind]()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_matches(path: Path, entry: dict) -> bool:
    """Whether the file holds what its manifest `entry` says: its xxh3_128, or the sha256 of an
    entry written before checksums were xxh3 (an entry with neither never matches)."""
    for kind in _DIGESTS:
        if kind in entry:
            return file_checksum(path, kind) == entry[kind]
    return False


class HashedFile(io.RawIOBase):
    """A new file written through Python (`pyarrow.PythonFile` takes it) that keeps the
    checksum (`CHECKSUM`) and the size of what it holds, so a finished file needs no reading
    back to be listed."""

    def __init__(self, path: Path):
        super().__init__()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.digest = _DIGESTS[CHECKSUM]()
        self.size = 0
        self._released = 0  # bytes from the start whose pages left the page cache

    def sync(self, last: bool = False) -> None:
        """fsync, then let the kernel drop the file's synced whole pages from its cache: nobody
        reads them soon, and a page cache that keeps growing takes pages the kernel has not
        used yet, which cost a multiple of recycled ones to fill on a VM (docs/BENCHMARKS.md).
        The last, partial page stays unless `last` (nothing more is written)."""
        os.fsync(self.fd)
        upto = self.size if last else self.size - self.size % mmap.PAGESIZE
        if upto > self._released and hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(self.fd, self._released, upto - self._released,
                                 os.POSIX_FADV_DONTNEED)
            except OSError:  # advice only: the data is synced either way
                return
            self._released = upto

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            written += os.write(self.fd, view[written:])
        self.digest.update(view)
        self.size += written
        return written

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()
