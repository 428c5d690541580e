"""Handing memory back between the phases of a big day.

Arrow's allocator (mimalloc) keeps what Arrow frees for Arrow's own reuse. DuckDB, NumPy and
Python allocate elsewhere (DuckDB's own memory goes back when its database closes:
`raw_files.release_duckdb`), so without this each phase's peak stacks on the one before: a
day's peak would be the sum of its phases rather than the largest of them.
"""

import ctypes
import ctypes.util
import gc

import pyarrow as pa

# glibc's malloc keeps freed memory in its heaps until asked (Python and NumPy allocate there)
_libc_name = ctypes.util.find_library("c")
_trim = getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None


def release_memory() -> None:
    """Return the memory Arrow has freed to the system (microseconds when there is none)."""
    pa.default_memory_pool().release_unused()


def release_garbage() -> None:
    """Collect what the steps before left in reference cycles, then release: once as a step
    starts. In one process, staging's step began with ~60 MB of the raw step's day still held
    by cycles (its generators and their frames) that only a full collection frees, and what
    they freed stayed in glibc's heaps (another ~60 MB) until trimmed. Costs ~0.15 s."""
    gc.collect()
    release_memory()
    if _trim is not None:
        _trim(0)
