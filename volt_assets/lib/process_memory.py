"""The allocator Arrow uses, and handing memory back between the phases of a big day.

Arrow allocates from glibc's malloc, as Python and NumPy do, rather than from its bundled
mimalloc (ARROW_DEFAULT_MEMORY_POOL=system, a default of `settings.py`, read by Arrow as
pyarrow is imported): on the 1M-row opening snapshot and the 200,000-row heavy day, mimalloc
kept 20-45 MB more peak RSS at the same speed (bench/ANALYSIS.md). DuckDB allocates apart (its
memory goes back when its database closes: `raw_files.release_duckdb`). Without handing freed
memory back, each phase's peak would stack on the one before: a day's peak would be the sum of
its phases rather than the largest of them.
"""

import ctypes
import ctypes.util
import gc

import pyarrow as pa

# glibc's malloc keeps freed memory in its heaps until asked (Python and NumPy allocate there)
_libc_name = ctypes.util.find_library("c")
_trim = getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None


def release_memory() -> None:
    """Return the memory Arrow has freed to the system (with glibc's pool, `malloc_trim`:
    microseconds when there is none)."""
    pa.default_memory_pool().release_unused()


_frozen = False


def release_garbage() -> None:
    """Collect what the steps before left in reference cycles, then release: once as a step
    starts. In one process, staging's step began with ~60 MB of the raw step's day still held
    by cycles (its generators and their frames) that only a full collection frees, and what
    they freed stayed in glibc's heaps (another ~60 MB) until trimmed.

    What is alive as the process's first step starts (imports, definitions, Dagster's run
    machinery, ~250,000 objects) lives as long as the process: it is frozen out of later
    collections, this one's and Python's automatic ones, which then cost milliseconds instead of
    ~0.15-0.3 s each."""
    global _frozen
    gc.collect()
    if not _frozen:
        gc.freeze()
        _frozen = True
    release_memory()
    if _trim is not None and pa.default_memory_pool().backend_name != "system":
        _trim(0)  # glibc's heaps: trimmed already when they are Arrow's pool too
