"""CPU memory choices the command lines make explicitly (never on import).

:func:`enable_huge_page_allocations` -- PyTorch's transparent-huge-page CPU allocations
(``THP_MEM_ALLOC_ENABLE=1`` unless the variable is set; ``0`` opts out). MeshNet allocates
activations of hundreds of MB per layer, and with 4 KB pages their first touch dominates: on a
2-core VM, allocating and filling a 232 MB activation takes ~130 ms with 4 KB pages and ~24 ms
with huge pages (``python tools/benchmark.py --phases gemm``, with and without
``THP_MEM_ALLOC_ENABLE=0``), and a CPU training step gets ~1.3x faster. ``main/train.py``,
``main/test.py`` and ``tools/benchmark.py`` call it first and log the value.

:func:`keep_freed_memory` -- keep freed CPU memory in an inference process for reuse (glibc's
malloc); ``main/test.py`` turns it on for CPU runs unless ``--no_memory_reuse``. It pays with
huge-page allocations on (a freed 300 MB block: 662 -> 0 page faults when allocated again);
with 4 KB-page allocations PyTorch's large blocks fault in again either way (76,800).

At batch 64 every MeshNet layer allocates activations of up to ~240 MB. glibc serves blocks
that large with fresh ``mmap`` pages and unmaps them when they are freed, so every forward
pass makes the kernel fault in and zero-fill gigabytes again. With ``mmap`` off and freed
heap memory kept (up to 2 GB), freed activations are handed out again instead. On the 2-core
benchmark VM, batch 64, 6,890 vertices (``python tools/benchmark.py --phases
pose2mesh_infer`` against the same with ``--no-memory-reuse``, alternating, twice each):
21,300 -> 180-330 page faults and 1.3-1.7 -> 0.03-0.09 s of kernel time per batch,
18.5 / 13.6 -> 21.9 / 22.0 samples/s, peak RSS 1.8 -> 2.0 GB.

Training does not use it: there the heap fragments under the mix of activation lifetimes
(forward activations live until backward), and peak RSS went from 4.6 to 7.0-7.3 GB for a
training step at most ~1 s faster (``MALLOC_MMAP_MAX_=0 python tools/benchmark.py --phases
pose2mesh_train``, the same switch made from the environment).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_UP_TO_BYTES = 2**31 - 1
"""Largest trim threshold mallopt takes (an int): free memory at the heap top up to 2 GB stays."""


def enable_huge_page_allocations() -> str:
    """Set ``THP_MEM_ALLOC_ENABLE=1`` unless the user set it; returns the value in effect.
    PyTorch reads it at its first large CPU allocation, so call this before creating tensors."""
    return os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def keep_freed_memory() -> bool:
    """From now on, serve every allocation from the heap and never return freed heap memory
    to the kernel, so that large blocks freed by one forward pass are reused by the next.

    Process-wide and permanent. Call it only in inference-only processes (``main/test.py``,
    the benchmark's inference phases). Returns False, changing nothing, where the C library
    has no working ``mallopt`` (non-glibc systems).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO_BYTES))
