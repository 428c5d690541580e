"""A set of (primary key, cursor) versions, asked many times which versions it lacks.

Reconciliation asks it once per block of the source's versions; `pc.is_in` would hash the
whole set again for every block (a million versions: ~140 MB and a rehash per block). Where
the key is an integer and the cursor an instant, both sides render them canonically
(`pk::text`, ISO-8601 UTC to the microsecond), so a version is exactly two int64s: the set is
one sorted array of 16-byte records (16 MB per million versions), looked up by binary search.
Other keys fall back to Arrow's hashing, exact either way.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INSTANT = pa.timestamp("us", tz="UTC")
ISO_MICROS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"  # how extraction renders an instant
_PAIR = np.dtype([("pk", "<i8"), ("cursor", "<i8")])
PACK_ROWS = 128 * 1024


def _whole(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _packed(pks: pa.Array, cursors: pa.Array) -> np.ndarray | None:
    """Each version as one 16-byte record, or None when a value is not an integer key and an
    instant as extraction renders them (or is null)."""
    if not len(pks):
        return np.empty(0, "V16")
    if pks.null_count or cursors.null_count:
        return None
    # only canonical texts: "007" and "7", or an instant written two ways, are different
    # versions and must stay apart
    if not pc.all(pc.match_substring_regex(cursors, ISO_MICROS)).as_py():
        return None
    try:
        keys = pc.cast(pks, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not pc.all(pc.equal(pc.cast(keys, pa.string()), pks.cast(pa.string()))).as_py():
        return None
    keys = keys.to_numpy()
    instants = pc.cast(pc.cast(cursors, INSTANT), pa.int64()).to_numpy()
    records = np.empty(len(keys), _PAIR)
    records["pk"], records["cursor"] = keys, instants
    return records.view("V16")


def _text_ids(pks: pa.Array, cursors: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pks.cast(pa.string()), cursors.cast(pa.string()), "\x1f")


class VersionSet:
    """The versions of one raw day; `absent(pks, cursors)` marks the ones it does not hold."""

    def __init__(self, pks: pa.Array | pa.ChunkedArray, cursors: pa.Array | pa.ChunkedArray):
        self.size = len(pks)
        self.sorted, self.ids = self._packed_all(pks, cursors), None
        if self.sorted is None:
            self.ids = _text_ids(_whole(pks), _whole(cursors))

    def _packed_all(self, pks, cursors) -> np.ndarray | None:
        """Every version packed, a slice at a time (no whole copy of the text columns)."""
        records = np.empty(self.size, "V16")
        done = 0
        for batch in pa.table({"pk": pks, "cursor": cursors}).to_batches(PACK_ROWS):
            packed = _packed(batch.column(0), batch.column(1))
            if packed is None:
                return None
            records[done : done + len(packed)] = packed
            done += len(packed)
        records.sort()
        return records

    def __len__(self) -> int:
        return self.size

    def absent(self, pks: pa.Array, cursors: pa.Array) -> pa.Array:
        """A boolean mask: True where (pk, cursor) is not in the set."""
        if not self.size:
            return pa.array(np.ones(len(pks), bool))
        if self.sorted is not None:
            asked = _packed(pks, cursors)
            if asked is not None:
                at = np.minimum(np.searchsorted(self.sorted, asked), self.size - 1)
                return pa.array(self.sorted[at] != asked)
            # a value the set cannot hold as integers: none of its versions can match it, but
            # the others must still be looked up exactly
            return self._absent_mixed(pks, cursors)
        return pc.invert(pc.is_in(_text_ids(pks, cursors), value_set=self.ids))

    def _absent_mixed(self, pks: pa.Array, cursors: pa.Array) -> pa.Array:
        mask = []
        for pk, cursor in zip(pks, cursors, strict=True):
            one = _packed(
                pa.array([pk.as_py()], pks.type), pa.array([cursor.as_py()], cursors.type)
            )
            if one is None:
                mask.append(True)
            else:
                at = min(int(np.searchsorted(self.sorted, one)[0]), self.size - 1)
                mask.append(bool(self.sorted[at] != one[0]))
        return pa.array(mask, pa.bool_())
