"""The exact text of a raw line's JSON values, for the lines DuckDB would round.

DuckDB reads JSON numbers as doubles, so a jsonb value holding a number with more than ~15
significant digits comes back rounded (12345678901234567890.123456789 -> 12345678901234567000.0).
Such lines are rare. The extraction marks the captures whose text may hold one
(`may_hold_long_numbers`, recorded in the raw manifest); for those days alone staging reads the
parts line by line, and the values of the lines that hold one are cut out as written by
`top_level_values`: a single pass over the bytes, without recursion,
so a jsonb nested 10,000 levels deep is no harder than a flat one.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

# A decimal number of 16 or more digits (a double keeps 15), or an integer beyond 64 bits (DuckDB
# reads smaller integers exactly). Also matches such runs inside strings: a false hit only costs
# the slow path for that line.
_LONG_NUMBER = re.compile(rb"(?=[0-9.]{17})[0-9]*\.[0-9]+|[0-9]{20,}")
_WHITESPACE = b" \t\r\n"
# The coarse test the extraction runs on every chunk it streams (~1 GB/s): 16 digits or dots in
# a row anywhere. Only days where it hits are read again line by line.
_DIGITS = bytes(0x31 if (0x30 <= b <= 0x39 or b == 0x2E) else 0x30 for b in range(256))
_RUN = b"1" * 16


def may_hold_long_numbers(chunk: bytes) -> bool:
    """Whether raw text may hold a number DuckDB would round (a superset: no false negative)."""
    return _RUN in chunk.translate(_DIGITS)


def _skip_string(line: bytes, i: int) -> int:
    """The index just past the string that opens at `line[i]` (a quote)."""
    i += 1
    while True:
        j = line.index(b'"', i)
        backslashes = 0
        while (
            line[j - 1 - backslashes] == 0x5C
        ):  # a quote after an odd run of backslashes is escaped
            backslashes += 1
        if backslashes % 2 == 0:
            return j + 1
        i = j + 1


def _value_end(line: bytes, i: int) -> int:
    """The index just past the JSON value starting at `line[i]`."""
    first = line[i]
    if first == 0x22:  # "
        return _skip_string(line, i)
    if first in b"{[":
        depth = 0
        while True:
            c = line[i]
            if c == 0x22:
                i = _skip_string(line, i)
                continue
            if c in b"{[":
                depth += 1
            elif c in b"}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(line) and line[i] not in b",}]" and line[i] not in _WHITESPACE:
        i += 1  # a number, true, false or null
    return i


def _compact(value: bytes) -> bytes:
    """The value without whitespace between tokens (strings untouched), as DuckDB writes JSON."""
    if not any(w in value for w in (b" ", b"\t", b"\r", b"\n")):
        return value
    out, i = bytearray(), 0
    while i < len(value):
        c = value[i]
        if c == 0x22:
            end = _skip_string(value, i)
            out += value[i:end]
            i = end
        else:
            if c not in _WHITESPACE:
                out.append(c)
            i += 1
    return bytes(out)


def top_level_values(line: bytes, keys: set[str]) -> dict[str, bytes]:
    """The raw JSON text of the members `keys` of the object on `line`, exactly as written."""
    out: dict[str, bytes] = {}
    i = line.index(b"{") + 1
    n = len(line)
    while i < n:
        while i < n and line[i] in _WHITESPACE + b",":
            i += 1
        if i >= n or line[i] == 0x7D:  # }
            break
        key_end = _skip_string(line, i)
        key = json.loads(line[i:key_end])
        i = line.index(b":", key_end) + 1
        while line[i] in _WHITESPACE:
            i += 1
        end = _value_end(line, i)
        if key in keys:
            out[key] = line[i:end]
        i = end
    return out


def exact_values(
    paths: list[Path], columns: list[str]
) -> dict[tuple[str, int], dict[str, str | None]]:
    """(part file name, line number) -> the exact text of `columns` (JSON text; None for null), for
    every line of the parts that holds a long number."""
    wanted = set(columns)
    found: dict[tuple[str, int], dict[str, str | None]] = {}
    for path in paths:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as lines:
            for number, line in enumerate(lines):
                if not _LONG_NUMBER.search(line):
                    continue
                values = top_level_values(line, wanted)
                found[(path.name, number)] = {
                    c: None if v == b"null" else _compact(v).decode("utf-8")
                    for c, v in values.items()
                }
    return found
