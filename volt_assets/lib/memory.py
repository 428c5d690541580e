"""Handing memory back between the phases of a big day.

Arrow's allocator (mimalloc) keeps what Arrow frees for Arrow's own reuse. DuckDB, NumPy and
Python allocate elsewhere, so without this each phase's peak stacks on the one before: a
day's peak would be the sum of its phases rather than the largest of them.
"""

import pyarrow as pa


def release_memory() -> None:
    """Return the memory Arrow has freed to the system (microseconds when there is none)."""
    pa.default_memory_pool().release_unused()
