"""The dirt real shop data has, as column overrides applied to a share of rows.

A dirty row gets exactly one kind of dirt. Each kind is a set of column overrides: SQL
expressions over the row's clean columns, its position `x` (which example of the kind, see
`switch`), its hash `v`, and the pools below (passed as parameters). `refused` says whether
the README's staging rules should send such a row to quarantine (True) or clean it into
staging (False); None: the row is valid, its picture is what is broken.

Which rows are dirty: a low-discrepancy sequence w(id) = frac(id * golden + offset(seed)).
Row `id` is dirty when w < rate, and its kind is floor(w / rate * kinds). Unlike a hash, this
spreads dirty rows evenly, so even a 300-row shop at rate 0.2 shows every kind, and the
dirty share is the rate within a row or two.
"""

from __future__ import annotations

from dataclasses import dataclass

GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class Dirt:
    kind: str
    overrides: dict[str, str]
    refused: bool | None
    about: str


POOLS: dict[str, list] = {
    # None is a NULL name: blank in the staging rules' sense too.
    "blank_text": ["", " ", "   ", "\t", "\n  ", "\u00a0", "\u3000", None],
    "sql_text": [
        "Robert'); DROP TABLE electrical_components;--",
        "Robert'); DROP TABLE users;--",
        "' OR '1'='1",
        "1; DELETE FROM orders WHERE 1=1; --",
        '"; SELECT pg_sleep(10); --',
        "x' UNION SELECT email, NULL FROM users --",
    ],
    "odd_full_names": [
        "محمد العلي",  # Arabic, right to left
        "דוד לוי",  # Hebrew, right to left
        "Zoe\u0308 Bronte\u0308",  # combining diaeresis instead of ë
        "Ana\u200bMaria Popescu",  # zero-width space
        "👷 Bob the Builder 🔌",
        "王伟",
        "Łukasz\u00a0Wójcik\u200e",  # no-break space, left-to-right mark
    ],
    "short_currency": ["PL", "EU", "US", "Z", "zł"],
    "bad_country": ["pl", "de", "XX", "UK", "P"],
    "path_tricks": [
        "../../etc/passwd",
        "/etc/hosts",
        ".hidden.png",
        "component_\x07bell.png",  # a control character
        "..\\..\\windows\\win.ini",
        "pictures/../../escape.png",
        "component_\n.png",
    ],
}

# Single odd pieces of text, spliced into clean values.
ODD = {
    "odd_emoji": "🔌",
    "odd_spark": "⚡🔥",
    "odd_arabic": "قاطع الدائرة",
    "odd_hebrew": "מפסק זרם",
    "odd_e_acute": "e\u0301",  # e + combining acute accent
    "odd_zwsp": "\u200b",
    "odd_cjk": "断路器",
}
ABSURD_QUANTITY = 2_000_000_000


def params() -> dict:
    """The pools and pieces every dirt expression may reference."""
    return {**{f"pool_{k}": v for k, v in POOLS.items()}, **ODD}


# Which example of its kind a dirty row shows: `x`, the row's position inside its kind's band
# of the sequence, evenly spread in [0, 1) like the sequence itself. Splitting x again
# (switch, then pool) keeps every example showing up, even in a small shop.


def switch(*branches: str) -> str:
    """One of the branches, by x: `CASE floor(x * k) WHEN 0 THEN b0 ... ELSE b_last END`."""
    whens = " ".join(f"WHEN {i} THEN {b}" for i, b in enumerate(branches[:-1]))
    return f"CASE floor(x * {len(branches)})::int {whens} ELSE {branches[-1]} END"


def pool(name: str, within: int = 1) -> str:
    """One element of a pool, by x; `within` = the number of branches of the enclosing switch."""
    n = len(POOLS[name])
    inner = f"(x * {within} - floor(x * {within}))"
    return f"(%(pool_{name})s::text[])[least({n}, 1 + floor({inner} * {n})::int)]"


# --- kinds shared by several tables (one definition each) ------------------------------------


def blank_text(kind: str, col: str) -> Dirt:
    return Dirt(kind, {col: pool("blank_text")}, True, f"{col} empty, whitespace-only or null")


def spaced_text(kind: str, col: str) -> Dirt:
    # Leading, trailing and inner runs of whitespace; squish recovers the clean value.
    expr = switch(
        f"'  ' || {col} || ' '",
        f"replace({col}, ' ', '   ')",
        f"chr(9) || replace({col}, ' ', ' ' || chr(10) || ' ') || '  '",
    )
    return Dirt(kind, {col: expr}, False, f"{col} with leading/trailing/inner runs of whitespace")


def sql_text(kind: str, col: str) -> Dirt:
    expr = switch(pool("sql_text", 2), f"{col} || ' ' || {pool('sql_text', 2)}")
    return Dirt(kind, {col: expr}, False, f"{col} that looks like SQL injection")


def currency_dirt(col: str) -> list[Dirt]:
    return [
        Dirt("currency_lower", {col: f"lower({col})"}, False, f"{col} in lower case (pln)"),
        Dirt("currency_short", {col: pool("short_currency")}, True, f"{col} of one or two letters"),
        Dirt("currency_null", {col: "NULL"}, True, f"{col} null"),
    ]


def price_dirt(col: str) -> list[Dirt]:
    return [
        Dirt(f"{col}_null", {col: "NULL"}, True, f"{col} null"),
        Dirt(f"{col}_negative", {col: f"-{col}"}, True, f"{col} negative"),
        Dirt(f"{col}_zero", {col: "0"}, True, f"{col} zero"),
    ]


def odd_unicode_component_name(col: str) -> Dirt:
    expr = switch(
        f"%(odd_emoji)s || ' ' || {col} || ' ' || %(odd_spark)s",
        f"%(odd_arabic)s || ' ' || {col}",
        f"{col} || ' ' || %(odd_hebrew)s",
        f"replace({col}, 'e', %(odd_e_acute)s)",
        f"replace({col}, ' ', %(odd_zwsp)s || ' ')",
        f"{col} || ' ' || %(odd_cjk)s",
    )
    return Dirt(
        "odd_unicode",
        {col: expr},
        False,
        "emoji, right-to-left Arabic/Hebrew, combining accents, zero-width spaces, CJK",
    )


# --- per table -------------------------------------------------------------------------------

COMPONENT_DIRT: tuple[Dirt, ...] = (
    *price_dirt("price"),
    blank_text("name_blank", "name"),
    spaced_text("name_spaced", "name"),
    *currency_dirt("currency"),
    Dirt(
        "category_messy",
        {
            "category": switch(
                "'  ' || initcap(category) || ' '", "upper(category)", "initcap(category) || chr(9)"
            )
        },
        False,
        "category in mixed case with spaces ('  Circuit-Breakers ')",
    ),
    odd_unicode_component_name("name"),
    sql_text("sql_text", "name"),
    Dirt(
        "stock_absurd",
        {"stock_quantity": switch("-(1 + mod(v, 50))::int", str(ABSURD_QUANTITY))},
        False,
        "stock negative or 2,000,000,000",
    ),
    Dirt("image_missing", {}, None, "image_filename names a picture that was never written"),
    Dirt("image_not_image", {}, None, "the picture file holds text, not an image"),
    Dirt(
        "image_path_trick",
        {"image_filename": pool("path_tricks")},
        None,
        "image_filename with path tricks (../../etc/passwd, /etc/hosts, .hidden.png, control characters)",
    ),
)

USER_DIRT: tuple[Dirt, ...] = (
    Dirt(
        "email_invalid",
        {
            "email": switch(
                "replace(email, '@', '')",
                "replace(email, '@', '@@')",
                "replace(email, '.', ' ')",
                "email || '.'",
                "split_part(email, '@', 1) || '@'",
                "'@' || split_part(email, '@', 2)",
            )
        },
        True,
        "email without @, with @@, with spaces inside, trailing dot, no domain, no local part",
    ),
    Dirt(
        "email_messy",
        {"email": switch("'  ' || upper(email) || ' '", "chr(9) || initcap(email) || '  '")},
        False,
        "email in upper case with spaces around (valid after cleaning)",
    ),
    Dirt("email_null", {"email": "NULL"}, True, "email null"),
    blank_text("full_name_blank", "full_name"),
    spaced_text("full_name_spaced", "full_name"),
    Dirt(
        "odd_unicode",
        {"full_name": pool("odd_full_names")},
        False,
        "full_name in Arabic/Hebrew, with combining characters, zero-width or no-break spaces, emoji, CJK",
    ),
    sql_text("sql_text", "full_name"),
    Dirt(
        "country_odd",
        {"country": switch("NULL", pool("bad_country", 2))},
        False,
        "country in lower case, unknown or null",
    ),
)

ORDER_DIRT: tuple[Dirt, ...] = (
    Dirt("quantity_zero", {"quantity": "0"}, True, "quantity 0"),
    Dirt("quantity_negative", {"quantity": "-(1 + mod(v, 10))::int"}, True, "quantity negative"),
    Dirt("quantity_absurd", {"quantity": str(ABSURD_QUANTITY)}, True, "quantity 2,000,000,000"),
    Dirt("quantity_null", {"quantity": "NULL"}, True, "quantity null"),
    *price_dirt("unit_price"),
    *currency_dirt("currency"),
    Dirt(
        "reference_missing",
        {
            "user_id": switch("NULL", "%(users)s + 1 + mod(v, 1000)", "user_id"),
            "component_id": switch(
                "component_id", "component_id", "%(components)s + 1 + mod(v, 1000)"
            ),
        },
        False,
        "user_id null or unknown, component_id unknown",
    ),
)

DIRT: dict[str, tuple[Dirt, ...]] = {
    "electrical_components": COMPONENT_DIRT,
    "users": USER_DIRT,
    "orders": ORDER_DIRT,
}


def _sequence(table: str, col: str) -> str:
    """w(id) in [0, 1): the table's low-discrepancy sequence (parameter `dirt_offset_<table>`)."""
    return f"(({col} * {GOLDEN} + %(dirt_offset_{table})s) - floor({col} * {GOLDEN} + %(dirt_offset_{table})s))"


def dirt_kind_sql(table: str, col: str = "id") -> str:
    """The dirt kind of a row, NULL when clean (parameter `dirty_rate`)."""
    kinds = DIRT[table]
    w = _sequence(table, col)
    whens = " ".join(f"WHEN {i} THEN '{d.kind}'" for i, d in enumerate(kinds))
    index = f"least({len(kinds) - 1}, floor({w} / %(dirty_rate)s * {len(kinds)})::int)"
    return f"CASE WHEN {w} < %(dirty_rate)s THEN CASE {index} {whens} END END"


def dirt_position_sql(table: str, col: str = "id") -> str:
    """x: where a dirty row sits inside its kind's band, in [0, 1) (meaningless when clean)."""
    position = f"({_sequence(table, col)} / greatest(%(dirty_rate)s, 1e-12) * {len(DIRT[table])})"
    return f"({position} - floor({position}))"


def overrides(table: str) -> dict[str, dict[str, str]]:
    """column -> {kind -> expression}: what each dirty kind writes instead of the clean value."""
    by_column: dict[str, dict[str, str]] = {}
    for dirt in DIRT[table]:
        for column, expr in dirt.overrides.items():
            by_column.setdefault(column, {})[dirt.kind] = expr
    return by_column
