"""Small objects this process wrote (manifests, quality reports), kept in memory with the ETag
S3 gave them, so a later step of the run does not read them back.

A run's raw step writes each day's manifest and quality report, and its staging step, in the
same process, needs both a moment later. The step lists the run's days once (the listing
carries every object's ETag); an object whose listed ETag is the one kept here is taken from
here, any other is read from S3. At most KEEP_BYTES are kept, the oldest dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

KEEP_BYTES = 32 << 20  # a day's manifest or report is a few kilobytes


class KnownObjects:
    """Bodies by (bucket, key), each with its ETag, oldest dropped past `limit` bytes."""

    def __init__(self, limit: int = KEEP_BYTES):
        self.limit = limit
        self._lock = threading.Lock()  # reports and uploads are written from several threads
        self._bodies: OrderedDict[tuple[str, str], tuple[str, bytes]] = OrderedDict()
        self._bytes = 0

    def keep(self, bucket: str, key: str, etag: str, body: bytes) -> None:
        with self._lock:
            self._drop((bucket, key))
            self._bodies[(bucket, key)] = (etag, body)
            self._bytes += len(body)
            while self._bytes > self.limit:
                self._drop(next(iter(self._bodies)))

    def get(self, bucket: str, key: str) -> tuple[str, bytes] | None:
        """The ETag and body last kept for the key, or None."""
        with self._lock:
            return self._bodies.get((bucket, key))

    def _drop(self, at: tuple[str, str]) -> None:
        old = self._bodies.pop(at, None)
        if old is not None:
            self._bytes -= len(old[1])


KNOWN_OBJECTS = KnownObjects()
