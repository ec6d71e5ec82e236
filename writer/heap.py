"""Keep freed message buffers for reuse (glibc). A batch message is up to tens of MB (256
VizDoom frames' images: ~13 MB), and by default glibc hands such a buffer back to the kernel
when it is freed, so the next message's buffer is fresh memory again: page faults for every
page, and on a VM pages the host may have to back anew. Raising the thresholds keeps them in the
heap: VizDoom +5.4 %, Breakout +1.6 % frames a second (docs/BENCHMARKS.md, seventh pass). The
writer's memory stays bounded by its peak: what it admits is bounded (pending frames, ring)."""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (larger blocks are mapped and unmapped)
TRIM_THRESHOLD = 256 * 1024 * 1024  # free memory at the heap's top kept before trimming


def keep_freed_buffers() -> bool:
    """Set glibc's malloc thresholds for this process; False where there is no glibc."""
    if not _is_glibc():
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False
