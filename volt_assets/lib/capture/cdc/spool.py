"""A drain's change lines on local disk, one gzip part per table and commit day, so memory
stays flat whatever a transaction's size; lines raw already holds (a replay after a crash
between writing raw and confirming the slot) are dropped by (commit LSN, position)."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# (commit LSN, position in its transaction): the identity of a change, in stream order
Place = tuple[int, int]


@dataclass
class DayPart:
    """The lines of one table and day that this drain adds."""

    path: Path
    through: Place | None  # the last change raw held before this drain (None: none)
    rows: int = 0
    first: Place | None = None
    last: Place | None = None
    columns: list[str] = field(default_factory=list)
    _file: gzip.GzipFile | None = field(default=None, repr=False)

    def write(self, place: Place, line: str) -> None:
        if self._file is None:
            # level 1: raw is written once and read once; speed matters more than a few bytes
            self._file = gzip.GzipFile(self.path, "wb", compresslevel=1, mtime=0)
        self._file.write(line.encode("utf-8") + b"\n")
        self.rows += 1
        self.first = self.first or place
        self.last = place

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ChangeSpool:
    """Routes each change line to its (table, day) part; `through(table, day)` says what raw
    already holds there (read once per table and day, from its manifest)."""

    def __init__(self, workdir: Path, stem: str, through: Callable[[str, dt.date], Place | None]):
        self.workdir, self.stem, self._through = workdir, stem, through
        self.parts: dict[tuple[str, dt.date], DayPart] = {}
        self.replayed = 0

    def part(self, table: str, day: dt.date) -> DayPart:
        if (table, day) not in self.parts:
            folder = self.workdir / table / day.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            self.parts[(table, day)] = DayPart(
                folder / f"{self.stem}-00000.jsonl.gz", self._through(table, day)
            )
        return self.parts[(table, day)]

    def add(self, table: str, day: dt.date, place: Place, line: str, columns: list[str]) -> bool:
        """Spool one change; False when raw holds it already (a replay)."""
        part = self.part(table, day)
        if part.through is not None and place <= part.through:
            self.replayed += 1
            return False
        part.write(place, line)
        part.columns = columns
        return True

    def close(self) -> None:
        for part in self.parts.values():
            part.close()

    def written(self) -> dict[tuple[str, dt.date], DayPart]:
        """The parts holding at least one new line."""
        return {k: p for k, p in self.parts.items() if p.rows}
