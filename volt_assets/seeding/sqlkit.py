"""Small SQL building blocks of the generator: deterministic pseudo-random values and pools.

Every random decision is a hash of (seed, salt, row id) computed by PostgreSQL's
`hashint8extended`, never `random()`: the same arguments give the same rows on any plan
(parallel or not) and in any order. A salt names the decision ("price", "created") so two
decisions about one row are independent.

SQL text here is built only from names and numbers this package controls; every value that
comes from the user or from a data pool travels as a psycopg2 parameter (`%(name)s`). For
that reason the modulo is always written `mod(a, b)`: a bare `%` would be a placeholder.
"""

from __future__ import annotations

import zlib

# 2**62 - 1: keeps hashes non-negative, so mod() and shifts behave.
_MASK = "4611686018427387903"
# 2**52: a 52-bit slice of the hash maps exactly onto a float8 in [0, 1).
_FLOAT_SCALE = "4503599627370496.0"
_SALT_SPACE = 65521  # salts live below this; seeds are multiplied past it


_SALTS: dict[int, str] = {}


def salt(name: str) -> int:
    """A stable number for a decision's name (two names never share one)."""
    number = zlib.crc32(name.encode()) % _SALT_SPACE
    if _SALTS.setdefault(number, name) != name:
        raise ValueError(f"salt of {name!r} collides with {_SALTS[number]!r}: rename one")
    return number


def h(name: str, col: str = "id") -> str:
    """A non-negative bigint hash of (seed, name, col)."""
    return f"(hashint8extended({col}, %(seed)s::bigint * {_SALT_SPACE} + {salt(name)}) & {_MASK})"


def u(name: str, col: str = "id") -> str:
    """A float8 uniform in [0, 1)."""
    return f"(({h(name, col)} >> 10)::float8 / {_FLOAT_SCALE})"


def pick(name: str, n: int | str, col: str = "id") -> str:
    """An integer uniform in [0, n)."""
    return f"mod({h(name, col)}, {n})"


def choice(param: str, values: list, name: str, col: str = "id", cast: str = "text") -> str:
    """One element of a list passed as parameter `param` (1-based SQL arrays)."""
    return f"(%({param})s::{cast}[])[1 + {pick(name, len(values), col)}]"


def pool_item(param: str, values: list, var: str = "v", cast: str = "text") -> str:
    """One element of a pool chosen by an already computed hash column `var` (its higher
    bits, so the choice is independent of `mod(var, k)` switches on the same row)."""
    return f"(%({param})s::{cast}[])[1 + mod({var} >> 20, {len(values)})]"


def case_of(var: str, branches: dict[str, str], default: str) -> str:
    """`CASE var WHEN 'k' THEN expr ... ELSE default END` (keys are our own identifiers)."""
    if not branches:
        return default
    whens = " ".join(f"WHEN '{key}' THEN {expr}" for key, expr in branches.items())
    return f"CASE {var} {whens} ELSE {default} END"
