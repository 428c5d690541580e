"""Files this process uploaded, kept on local disk for a step that reads them back.

A run's raw step uploads each day's parts, and its staging step, in the same process (the
executor runs a run's steps in process), downloads them again a moment later: one GET per
part and day, S3's latency each time. The parts are kept here instead of being deleted,
under the bucket, key and version id S3 gave the upload, in a temporary folder of the
process, at most KEEP_BYTES of them (the oldest dropped first). A reader asking for exactly
that version gets the local copy, moved where it wants it; any other version goes to S3.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

KEEP_BYTES = 256 << 20  # disk, not memory: a 1M-row table's year of raw parts is ~100 MB


class LocalCopies:
    """Uploaded files by (bucket, key, version id), oldest dropped past `limit` bytes."""

    def __init__(self, limit: int = KEEP_BYTES):
        self.limit = limit
        self._lock = threading.Lock()  # the IO manager uploads from several threads
        self._files: OrderedDict[tuple[str, str, str], tuple[Path, int]] = OrderedDict()
        self._bytes = 0
        self._dir: Path | None = None

    def _folder(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="volt-local-copies-"))
            atexit.register(shutil.rmtree, self._dir, True)
        return self._dir

    def keep(self, bucket: str, key: str, version_id: str, body: bytes | Path) -> None:
        """Keep a copy of an upload (a hard link of a local file, which its writer may then
        delete; bytes written out)."""
        size = body.stat().st_size if isinstance(body, Path) else len(body)
        if size > self.limit:
            return
        with self._lock:
            copy = self._folder() / f"{len(self._files)}-{os.urandom(6).hex()}"
            if isinstance(body, Path):
                try:
                    os.link(body, copy)
                except OSError:  # another file system: copy it
                    shutil.copyfile(body, copy)
            else:
                copy.write_bytes(body)
            self._files[(bucket, key, version_id)] = (copy, size)
            self._bytes += size
            while self._bytes > self.limit:
                _, (oldest, oldest_size) = self._files.popitem(last=False)
                oldest.unlink(missing_ok=True)
                self._bytes -= oldest_size

    def take(self, bucket: str, key: str, version_id: str, target: Path) -> bool:
        """Move the kept copy of that exact version to `target`; False when there is none."""
        with self._lock:
            found = self._files.pop((bucket, key, version_id), None)
            if found is None:
                return False
            copy, size = found
            self._bytes -= size
        shutil.move(copy, target)
        return True


LOCAL_COPIES = LocalCopies()
