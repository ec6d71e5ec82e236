"""writer.heap: after keep_freed_buffers() a freed 20 MB buffer is kept in the heap and reused
instead of being mapped and unmapped each time (each in a fresh interpreter: glibc's own
threshold moves as a process frees blocks)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from writer.heap import keep_freed_buffers
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
kept = keep_freed_buffers() if sys.argv[1] == "keep" else None
block = libc.malloc(20 << 20)
mapped = libc.mallinfo2().hblkhd >= 20 << 20
libc.free(block)
print(kept, mapped)
"""


@pytest.mark.skipif(not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"),
                    reason="glibc's malloc only: elsewhere keep_freed_buffers does nothing")
def test_a_large_block_comes_from_the_heap_once_freed_buffers_are_kept():
    def probe(mode: str) -> str:
        return subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                              text=True, check=True).stdout.split()

    assert probe("default") == ["None", "True"]  # glibc maps it (its threshold: 128 KB)
    assert probe("keep") == ["True", "False"]
