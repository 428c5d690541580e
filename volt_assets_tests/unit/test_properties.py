"""Property-based tests (hypothesis) of the partition windows, the extraction's window on real
PostgreSQL, and the cleaning, typing and deduplication rules; test_rules.py covers how
refused rows are attributed to rules.

| property                                                                  | code                  |
| ------------------------------------------------------------------------- | --------------------- |
| every aware instant, any UTC offset, lies in exactly one day's window     | partitions.day_of/day_window |
| a window is [D 00:00, D+1 00:00) UTC: first and last microsecond, no gap  | partitions.day_window |
| a run's days are exactly the days of its half-open window                 | partitions.days_between |
| Dagster's partition window of key D is day_window(D)                      | partitions.daily_partitions |
| PostgreSQL's extract of day D holds exactly the rows whose cursor is in D, |                       |
| and the rendered cursor parses back to the same microsecond (years 1-9999)| lake.extract          |
| its versions (same snapshot) are the lines' (pk, cursor), any text key    | lake.extract          |
| squish collapses every Unicode White_Space run and trims; idempotent      | rules.squish          |
| not_blank refuses exactly the values that are only whitespace             | rules.broken_mask     |
| a numeric(12,2) is typed exactly or refused with a reason, never rounded  | rules.coerce          |
| timestamps in any offset, years 1 to 9999, are typed to the exact instant | rules.coerce          |
| any text in any column: validate never raises, refused rows carry reasons, |                       |
| accepted rows break no refuse rule                                        | rules.validate        |
| rows valid by their declared types and the refuse rules are never refused | rules.validate        |
| staging's latest-per-key is independent of row order and batch splits,    |                       |
| and raw rows = staged + quarantined + superseded                          | lake.staging          |
| a version set marks absent exactly the (pk, cursor) pairs it lacks: integer |                       |
| keys and ISO instants (packed), text keys, and a mix of both, any chunking | lake.version_set      |
| any JSON object, compact or spaced: each member's text is cut out exactly, |                       |
| and the chunk test flags every text holding a 16-digit number              | lake.exact_json       |
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import tempfile
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from volt_assets.lib.capture import exact_json
from volt_assets.lib.capture import extract as ex
from volt_assets.lib.config import partitions
from volt_assets.lib.config.table_config import table
from volt_assets.lib.staging import sorted_runs as spill
from volt_assets.lib.staging import transform
from volt_assets.lib.staging.rules import broken_mask, squish, validate
from volt_assets.lib.staging.transform import ChunkBuilder, StagingBuilder
from volt_assets_tests.faults.env import using_env

UTC = dt.UTC
MICRO = dt.timedelta(microseconds=1)
# day_window(9999-12-31) would end in year 10000, which datetime cannot hold: no partition is that late
FIRST, LAST = (
    dt.datetime(1, 1, 2, tzinfo=UTC),
    dt.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
)
# The Unicode White_Space property (what `squish` collapses): ASCII \t\n\v\f\r and space, NEL,
# and the separators (Zs, Zl, Zp).
WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)

NO_DEADLINE = settings(
    deadline=None
)  # how long an example takes on a busy CI machine is no property

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
instants = st.datetimes(
    min_value=FIRST.replace(tzinfo=None), max_value=LAST.replace(tzinfo=None)
).map(lambda d: d.replace(tzinfo=UTC))
dates = st.dates(min_value=dt.date(1, 1, 2), max_value=dt.date(9999, 12, 30))


# --- partitions -------------------------------------------------------------------------------


@NO_DEADLINE
@given(instants, offsets)
def test_every_instant_lies_in_exactly_one_day(instant, offset):
    local = instant.astimezone(offset)  # the same instant, written in another offset
    day = partitions.day_of(local)
    start, end = partitions.day_window(day)
    assert start <= local < end
    assert day == instant.date()  # the UTC date, whatever the offset it was written in
    for other in (day - dt.timedelta(days=1), day + dt.timedelta(days=1)):
        if dt.date(1, 1, 1) < other < dt.date(9999, 12, 31):
            lo, hi = partitions.day_window(other)
            assert not lo <= local < hi


@NO_DEADLINE
@given(dates)
def test_a_window_is_half_open_midnight_to_midnight_utc(day):
    start, end = partitions.day_window(day)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert (start.date(), start.time()) == (day, dt.time(0))
    assert end - start == dt.timedelta(days=1)
    assert partitions.day_of(start) == day  # 00:00:00 belongs to D
    assert partitions.day_of(end - MICRO) == day  # 23:59:59.999999 too
    assert partitions.day_of(end) == day + dt.timedelta(days=1)  # the next midnight does not


@NO_DEADLINE
@given(dates, st.integers(min_value=0, max_value=400))
def test_the_days_of_a_window_are_every_day_in_it(first, span):
    last = first + dt.timedelta(days=span)
    assume(last <= dt.date(9999, 12, 30))
    days = partitions.days_between(partitions.day_window(first)[0], partitions.day_window(last)[1])
    assert days == [first + dt.timedelta(days=i) for i in range(span + 1)]


@NO_DEADLINE
@given(st.datetimes())
def test_a_naive_datetime_has_no_day(naive):
    with pytest.raises(ValueError):
        partitions.day_of(naive)


@settings(max_examples=50, deadline=None)
@given(st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_dagster_partition_windows_are_the_day_windows(day):
    with using_env({"VOLT_PARTITIONS_START": "2020-01-01"}):
        window = partitions.daily_partitions().time_window_for_partition_key(day.isoformat())
    assert (window.start, window.end) == partitions.day_window(day)


# --- the extraction's window on PostgreSQL ----------------------------------------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(instants, offsets), min_size=1, max_size=12),
    st.lists(
        st.sampled_from([dt.timedelta(0), -MICRO, MICRO, dt.timedelta(days=1) - MICRO]),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([dt.date(1, 1, 2), dt.date(2026, 1, 2), dt.date(9999, 12, 30)]),
)
def test_postgres_extract_of_a_day_holds_exactly_its_rows(
    source, tmp_path, instants_, edges, edge_day
):
    """Random cursors (in random offsets), plus cursors at and next to midnights: each row is in
    the extract of its UTC day and of no other, with its cursor rendered to the microsecond."""
    config = table("electrical_components")
    cursors = [i.astimezone(o) for i, o in instants_]
    midnight = dt.datetime.combine(edge_day, dt.time(0), UTC)
    cursors += [midnight + e for e in edges if FIRST <= midnight + e <= LAST]
    with source.cursor() as cur:
        cur.execute("TRUNCATE electrical_components")
        for i, cursor in enumerate(cursors):
            cur.execute(
                "INSERT INTO electrical_components (id, sku, created_at, updated_at) VALUES (%s, %s, %s, %s)",
                (i, f"S{i}", cursor, cursor),
            )
    source.commit()
    days = {partitions.day_of(c) for c in cursors}
    days |= {d + dt.timedelta(days=k) for d in days for k in (-1, 1)}
    found: dict[int, list[dt.date]] = {}
    for n, day in enumerate(sorted(d for d in days if d < dt.date(9999, 12, 31))):
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}-{n}"
        out.mkdir()
        result = ex.extract(source, config, partitions.day_window(day), out, "part")
        lines = []
        for path in result.paths:
            for line in gzip.decompress(path.read_bytes()).splitlines():
                record = json.loads(line)
                lines.append((str(record["id"]), record["updated_at"]))
                found.setdefault(record["id"], []).append(day)
                rendered = pc.cast(pa.array([record["updated_at"]]), pa.timestamp("us", tz="UTC"))[
                    0
                ].as_py()
                assert rendered == cursors[record["id"]], record
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["updated_at"])
        # the versions read in the same snapshot are exactly the lines' (pk, cursor) texts
        assert sorted(zip(*result.versions.to_pydict().values())) == sorted(lines)
    assert found == {i: [partitions.day_of(c)] for i, c in enumerate(cursors)}


# Text a key can hold in PostgreSQL: anything but NUL, including CSV's quote, comma and newlines.
key_texts = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        key_texts
        | st.sampled_from(["", " ", '"', ",", "a,b", 'q"x"', "\n", "\r\n", "NULL", "\\N"]),
        min_size=1,
        max_size=15,
        unique=True,
    )
)
def test_the_versions_of_a_text_keyed_table_are_its_lines_keys(source, tmp_path, keys):
    """Raw's versions index (the second COPY of the extraction's snapshot) holds each line's key
    exactly as its JSON line does, whatever the text: empty, quotes, commas, line breaks."""
    from volt_assets.lib.config.table_config import parse_config

    config = parse_config(
        {
            "tables": {
                "keyed": {
                    "primary_key": "k",
                    "cursor": "u",
                    "columns": {"k": "text", "u": "timestamptz"},
                }
            }
        }
    )["keyed"]
    day = dt.date(2026, 3, 1)
    with source.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS keyed")
        cur.execute("CREATE TABLE keyed (k text PRIMARY KEY, u timestamptz NOT NULL)")
        for i, key in enumerate(keys):
            cur.execute(
                "INSERT INTO keyed VALUES (%s, %s)",
                (key, dt.datetime(2026, 3, 1, 1, tzinfo=UTC) + i * MICRO),
            )
    source.commit()
    out = tmp_path / f"x{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    result = ex.extract(source, config, partitions.day_window(day), out, "part")
    lines = [
        json.loads(line)
        for path in result.paths
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    assert sorted(zip(*result.versions.to_pydict().values())) == sorted(
        (r["k"], r["u"]) for r in lines
    )
    assert sorted(result.versions["pk"].to_pylist()) == sorted(keys)


# --- cleaning and typing ---------------------------------------------------------------------------


def reference_squish(text: str) -> str:
    return " ".join(re.split(f"[{re.escape(WHITE_SPACE)}]+", text)).strip(" ")


# Text as it can arrive (UTF-8 from PostgreSQL or a CSV): any character but lone surrogates.
CHARACTERS = st.characters(exclude_categories=["Cs"])
texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(WHITE_SPACE), CHARACTERS, st.sampled_from("aZ9 \u05d0\u0301🔌")
    ),
    max_size=40,
)


@NO_DEADLINE
@given(st.lists(st.one_of(st.none(), texts), max_size=20))
def test_squish_collapses_every_whitespace_run_and_trims(values):
    out = squish(pa.array(values, pa.string())).to_pylist()
    assert out == [None if v is None else reference_squish(v) for v in values]
    assert squish(pa.array(out, pa.string())).to_pylist() == out  # idempotent


@NO_DEADLINE
@given(
    st.lists(
        st.one_of(st.none(), st.text(alphabet=WHITE_SPACE, max_size=8), texts),
        min_size=1,
        max_size=20,
    )
)
def test_not_blank_refuses_exactly_what_is_only_whitespace(values):
    rule = table("electrical_components").refuse[1]
    assert (rule.column, rule.rule) == ("name", "not_blank")
    blank = broken_mask(rule, pa.array(values, pa.string())).to_pylist()
    assert blank == [v is None or reference_squish(v) == "" for v in values]


def components(**columns: list) -> pa.Table:
    """A batch of component rows as text, valid but for the columns given."""
    n = len(next(iter(columns.values())))
    base = {
        "id": [str(i) for i in range(n)],
        "name": ["Fuse"] * n,
        "price": ["1.00"] * n,
        "currency": ["EUR"] * n,
        "created_at": ["2026-01-01T00:00:00.000000Z"] * n,
        "updated_at": ["2026-01-02T00:00:00.000000Z"] * n,
    }
    base.update(columns)
    config = table("electrical_components")
    return pa.table({c: pa.array(base.get(c, [None] * n), pa.string()) for c in config.columns})


@NO_DEADLINE
@given(
    st.lists(
        st.decimals(
            allow_nan=False,
            allow_infinity=False,
            min_value=Decimal("-1e12"),
            max_value=Decimal("1e12"),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_a_price_is_typed_exactly_or_refused_never_rounded(prices):
    texts_ = [format(p, "f") for p in prices]
    result = validate(table("electrical_components"), components(price=texts_))
    reasons = iter(result.reasons)
    for text, price, typed, refused in zip(
        texts_, prices, result.typed["price"].to_pylist(), result.refused.to_pylist()
    ):
        fits = price == price.quantize(Decimal("0.01")) and abs(price) < Decimal(
            "1e10"
        )  # numeric(12,2)
        if fits and price > 0:
            assert not refused and typed == price, text
            continue
        assert refused, text
        [why] = next(reasons)
        assert why.startswith(
            "price: not a numeric(12,2): " if not fits else "price: not positive: "
        ), (text, why)


@NO_DEADLINE
@given(st.lists(st.tuples(instants, offsets), min_size=1, max_size=20), st.booleans())
def test_timestamps_in_any_offset_are_typed_to_the_exact_instant(values, raw_style):
    """Raw renders `YYYY-MM-DDTHH:MM:SS.ffffffZ`; a landing CSV may carry any offset."""
    rendered = [
        i.isoformat(timespec="microseconds").replace("+00:00", "Z")
        if raw_style
        else i.astimezone(o).isoformat()
        for i, o in values
    ]
    result = validate(table("electrical_components"), components(created_at=rendered))
    assert result.refused.to_pylist() == [False] * len(values)
    assert result.typed["created_at"].to_pylist() == [i for i, _ in values]


ANY_TEXT = st.one_of(
    st.none(),
    st.text(CHARACTERS, max_size=30),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e309",
            "9" * 40,
            "-1",
            "0",
            "0.001",
            "99999999999.99",
            "100001",
            " 7 ",
            "",
            "'; DROP TABLE orders;--",
            "0001-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.999999Z",
            "x@y.io",
            "EUR",
        ]
    ),
)


@pytest.mark.parametrize("name", ["electrical_components", "users", "orders"])
def test_any_text_in_any_column_is_typed_or_refused_with_reasons(name):
    config = table(name)

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(
            st.fixed_dictionaries({c: ANY_TEXT for c in config.columns}), min_size=1, max_size=15
        )
    )
    def check(rows):
        strings = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in config.columns})
        result = validate(config, strings)
        refused = result.refused.to_pylist()
        assert result.typed.num_rows == len(rows) and result.typed.schema == config.source_schema()
        assert len(result.reasons) == sum(refused) and all(result.reasons)
        accepted = result.typed.filter(pc.invert(result.refused))
        for rule in config.refuse:
            assert not any(broken_mask(rule, accepted[rule.column]).to_pylist()), rule

    check()


def valid_text(column: str, pg_type: str, rules: set[str]) -> st.SearchStrategy:
    """Text of a value valid for its declared type and the README's refuse rules, built here
    from the types and rules (not from the code's masks): validate must accept it."""
    positive = "positive" in rules
    if pg_type in ("bigint", "integer"):
        top = 100_000 if "at_most" in rules else 2**63 - 1 if pg_type == "bigint" else 2**31 - 1
        return st.integers(1 if positive else -top, top).map(str)
    if pg_type.startswith("numeric("):
        precision, scale = (int(x) for x in pg_type[8:-1].split(","))
        top = Decimal(10 ** (precision - scale)) - Decimal(1).scaleb(-scale)
        low = Decimal(1).scaleb(-scale) if positive else -top
        return st.decimals(low, top, places=scale, allow_nan=False, allow_infinity=False).map(str)
    if pg_type == "timestamptz":
        return instants.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0"))
    if pg_type == "jsonb":
        return st.dictionaries(
            st.text(max_size=5), st.one_of(st.integers(-99, 99), st.text(max_size=5))
        ).map(json.dumps)
    if "currency_code" in rules:
        return st.text(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=3, max_size=3
        )
    if "email" in rules:
        return st.from_regex(
            r"[a-z0-9]{1,8}([.+][a-z0-9]{1,5})?@[a-z0-9]{1,8}\.[a-z]{2,6}", fullmatch=True
        )
    if pg_type.startswith("char("):
        return st.text(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=int(pg_type[5:-1]), max_size=int(pg_type[5:-1])
        )
    if "not_blank" in rules:
        return st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ]{0,20}", fullmatch=True)
    return st.text(CHARACTERS, max_size=30)


@pytest.mark.parametrize("name", ["electrical_components", "users", "orders"])
def test_values_valid_by_the_readme_are_never_refused(name):
    """Over-refusal: rows valid by their declared types and the refuse rules all pass validate."""
    config = table(name)
    rules = {c: {r.rule for r in config.refuse if r.column == c} for c in config.columns}
    row = st.fixed_dictionaries({c: valid_text(c, t, rules[c]) for c, t in config.columns.items()})

    @settings(max_examples=60, deadline=None)
    @given(st.lists(row, min_size=1, max_size=10))
    def check(rows):
        strings = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in config.columns})
        result = validate(config, strings)
        assert not any(result.refused.to_pylist()), (result.reasons, rows)

    check()


# --- staging: latest version per key ------------------------------------------------------------------

versions = st.lists(
    st.tuples(
        st.integers(1, 6),
        st.integers(0, 10_000),
        st.sampled_from(["5.00", "7.50", "-1", "abc", "0.10"]),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda v: (v[0], v[1]),  # raw holds one line per key and cursor
)


def build(rows: list[tuple], splits: list[int], spill_dir=None, deletes=None):
    config = table("electrical_components")
    captures = {f"capture-{c}": dt.datetime(2026, 1, 2, 23, c, tzinfo=UTC) for c in range(3)}
    builder = StagingBuilder(config, captures, spill_dir)
    strings = components(
        id=[str(k) for k, *_ in rows],
        price=[p for _, _, p, _ in rows],
        updated_at=[
            (dt.datetime(2026, 1, 2, tzinfo=UTC) + dt.timedelta(seconds=s))
            .isoformat()
            .replace("+00:00", "Z")
            for _, s, _, _ in rows
        ],
        name=[f"v{s}" for _, s, _, _ in rows],
    ).append_column("_file", pa.array([f"capture-{c}" for *_, c in rows], pa.string()))
    return fed(builder, strings, splits).finish(deletes)


def fed(builder: StagingBuilder, strings: pa.Table, splits: list[int]) -> StagingBuilder:
    """`builder` given the rows of `strings` in batches of the sizes `splits`, then the rest."""
    start = 0
    for size in splits + [len(strings)]:
        batch = strings.slice(start, size).combine_chunks()
        if batch.num_rows:
            builder.add(batch.to_batches()[0])
        start += size
    return builder


@settings(max_examples=60, deadline=None)
@given(versions, st.randoms(use_true_random=False), st.lists(st.integers(1, 20), max_size=5))
def test_staging_keeps_the_latest_valid_version_whatever_the_order_and_batches(rows, rng, splits):
    whole = build(rows, [])
    shuffled = list(rows)
    rng.shuffle(shuffled)
    again = build(shuffled, splits)
    assert again.staging.equals(whole.staging) and again.counts == whole.counts
    counts = whole.counts
    assert (
        counts["raw_rows"]
        == len(rows)
        == counts["staged_rows"] + counts["quarantined_rows"] + counts["superseded_rows"]
    )
    valid = [r for r in rows if r[2] in ("5.00", "7.50", "0.10")]
    latest = {}
    for key, second, price, _ in sorted(valid, key=lambda r: r[1]):
        latest[key] = (second, Decimal(price))
    got = {r["id"]: (r["name"], r["price"]) for r in whole.staging.to_pylist()}
    assert got == {k: (f"v{s}", p) for k, (s, p) in latest.items()}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 4),
            st.integers(0, 2),  # few cursors: versions tie, within and across captures and runs
            st.sampled_from(["5.00", "7.50", "-1", "0.10"]),
            st.integers(0, 1),
        ),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(1, 20), min_size=1, max_size=5),
    st.lists(st.integers(1, 5), max_size=3, unique=True),
)
def test_a_day_built_through_its_spill_file_is_the_day_built_in_memory(rows, splits, deleted):
    """A day too big for memory goes on in a local file of sorted runs, merged a few rows at a
    time: the staging file is byte for byte the in-memory build's, tombstones and ties
    included, and so are its quarantine and counts."""
    assume(any(price in ("5.00", "7.50", "0.10") for _, _, price, _ in rows))  # a valid row
    noticed = dt.datetime(2026, 1, 3, 1, tzinfo=UTC)
    deletes = pa.table(
        {"pk": [str(k) for k in deleted], "noticed_at": [noticed] * len(deleted)},
        schema=pa.schema([("pk", pa.string()), ("noticed_at", pa.timestamp("us", tz="UTC"))]),
    )
    in_memory = build(rows, splits, deletes=deletes)
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(transform, "SPILL_BYTES", 0),  # a run per batch
        mock.patch.object(spill, "RUN_GROUP_ROWS", 2),  # the merge holds two rows of each run
    ):
        spilled = build(rows, splits, Path(tmp), deletes)
        assert isinstance(spilled.staging, Path)  # the premise: this day went through its file
        assert spilled.staging.read_bytes() == transform.parquet_bytes(in_memory.staging)
        assert [p.name for p in Path(tmp).iterdir()] == [spilled.staging.name]  # spill removed
    assert spilled.quarantine.equals(in_memory.quarantine)
    assert spilled.counts == in_memory.counts


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 30),
            st.sampled_from(["A-1", "A-2", "b", None]),  # few SKUs: duplicates, and null twice
            st.sampled_from(["fuses", "cables", "Lamps", None]),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=50,
    ),
    st.lists(st.integers(1, 20), min_size=1, max_size=4),
)
def test_a_day_in_a_file_is_judged_as_the_same_day_in_memory(rows, splits):
    """The `checks` rules of a day built through its file (read a row group at a time, its
    duplicates found by DuckDB) give the failing rows, rows judged and samples of the same
    day held in memory."""
    from volt_assets.defs.quality.staging_checks import StagingQuality, staging_rules

    config = table("electrical_components")
    strings = components(
        id=[str(k) for k, *_ in rows],
        sku=[s for _, s, _, _ in rows],
        category=[c for _, _, c, _ in rows],
        updated_at=[f"2026-01-02T00:00:{s:02d}.000000Z" for *_, s in rows],
    ).append_column("_file", pa.array(["capture-0"] * len(rows), pa.string()))
    captures = {"capture-0": dt.datetime(2026, 1, 2, 23, tzinfo=UTC)}

    def built(spill_dir):
        return fed(StagingBuilder(config, captures, spill_dir), strings, splits).finish(None)

    quality = StagingQuality(config, store=None, days=[], now=dt.datetime(2026, 6, 1, tzinfo=UTC))
    checks = [rule for rule, refuse in staging_rules(config) if not refuse]
    assert {"unique", "in_set"} <= {r.rule for r in checks}  # the premise: both kinds judged
    in_memory = [quality._judge(built(None).staging, rule) for rule in checks]
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(transform, "SPILL_BYTES", 0),
        mock.patch.object(transform, "ROW_GROUP_ROWS", 3),  # judged three rows at a time
    ):
        day = built(Path(tmp))
        assert isinstance(day.staging, Path)
        in_file = [quality._judge(day.staging, rule) for rule in checks]
    assert in_file == in_memory
    # independently: the SKU of each key's latest row (the first read among equals), the
    # duplicated ones counted row by row
    latest = {}
    for key, sku, _, second in rows:
        if key not in latest or second > latest[key][0]:
            latest[key] = (second, sku)
    held = [sku for _, sku in latest.values()]
    sku_rule = checks.index(next(r for r in checks if r.column == "sku"))
    assert in_file[sku_rule][:2] == (sum(held.count(s) > 1 for s in held), len(held))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4), st.text(st.characters(blacklist_characters="\n"), max_size=30)
        ),
        max_size=60,
    ).map(sorted),  # lines in cursor order
    st.integers(1, 200),
)
def test_day_parts_give_each_day_its_own_lines_whatever_the_blocks(lines, flush_bytes):
    """COPY's rows, each led by its day, routed a block at a time: each day's parts hold
    exactly its lines without the prefix, in order; days before the first go to the first."""
    first = dt.date(2026, 1, 2)
    rows = [
        f'{dt.date(2026, 1, 1) + dt.timedelta(days=d)}{{"v": {json.dumps(text)}}}\n'.encode()
        for d, text in lines
    ]
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(ex, "FLUSH_BYTES", flush_bytes):
        sink = ex.DayParts(Path(tmp), "part", first)
        for row in rows:
            sink.write(row)
        sink.close()
        got = {
            day: b"".join(gzip.decompress(p.read_bytes()) for p in writer.paths)
            for day, writer in sink.writers.items()
        }
    expected: dict[dt.date, bytes] = {}
    for row in rows:
        day = max(dt.date.fromisoformat(row[:10].decode()), first)
        expected[day] = expected.get(day, b"") + row[10:]
    assert got == expected
    assert {d: w.rows for d, w in sink.writers.items()} == {
        d: text.count(b"\n") for d, text in expected.items()
    }


json_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(min_value=-(10**20), max_value=10**20, places=12).map(lambda d: format(d, "f")),
    st.sampled_from(
        ["12345678901234567890.123456789", "2.50", "-0.0", "1e400", "1E-7", "0.1000000000000000055"]
    ),
)
json_values = st.recursive(
    st.one_of(
        st.none().map(lambda _: "null"),
        st.booleans().map(lambda b: "true" if b else "false"),
        json_numbers,
        st.text(max_size=12).map(json.dumps),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.text(max_size=6), inner, max_size=4).map(
            lambda d: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=12,
)


@NO_DEADLINE
@given(
    st.dictionaries(st.text(min_size=1, max_size=8), json_values, min_size=1, max_size=6),
    st.booleans(),
)
def test_top_level_values_cut_out_each_member_exactly(members, spaced):
    """Each member's text comes back as written (numbers digit for digit), and compacting it keeps
    the same JSON: what staging stores for a line DuckDB would round."""
    sep = ", " if spaced else ","
    line = (
        "{"
        + sep.join(f"{json.dumps(k)}:{' ' if spaced else ''}{v}" for k, v in members.items())
        + "}\n"
    ).encode()
    got = exact_json.top_level_values(line, set(members))
    assert {k: v.decode() for k, v in got.items()} == members
    for text in members.values():
        compact = exact_json._compact(text.encode()).decode()
        assert json.loads(compact, parse_float=Decimal, parse_int=Decimal) == json.loads(
            text, parse_float=Decimal, parse_int=Decimal
        )


@NO_DEADLINE
@given(
    st.text(max_size=200),
    st.integers(min_value=16, max_value=40),
    st.integers(min_value=0, max_value=300),
)
def test_the_chunk_test_never_misses_a_long_number(text, digits, at):
    number = "1" + "2" * (digits - 1)
    body = text.encode()
    at = min(at, len(body))
    chunk = body[:at] + number.encode() + body[at:]
    assert exact_json.may_hold_long_numbers(chunk)
    # ... nor one split across two chunks, as the extraction streams them (it keeps a 16-byte tail)
    cut = at + digits // 2
    assert exact_json.may_hold_long_numbers(chunk[:cut][-16:] + chunk[cut:])


CHUNK_DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
days_of_versions = st.lists(
    st.tuples(
        st.sampled_from(range(len(CHUNK_DAYS))),
        st.integers(1, 6),
        st.integers(0, 10_000),
        st.sampled_from(["5.00", "7.50", "-1", "abc", "0.10", ""]),
    ),
    min_size=1,
    max_size=80,
    unique_by=lambda v: (v[0], v[1], v[2]),
)


def day_batch(rows: list[tuple]) -> pa.Table:
    """Component versions as raw text, each from its day's part file (rows in day order)."""
    return components(
        id=[str(k) for _, k, _, _ in rows],
        price=[p for *_, p in rows],
        updated_at=[f"{CHUNK_DAYS[d]}T00:00:{s % 60:02d}.{s:06d}Z" for d, _, s, _ in rows],
        name=[f"v{s}" for _, _, s, _ in rows],
    ).append_column("_file", pa.array([f"{CHUNK_DAYS[d]}-part" for d, *_ in rows], pa.string()))


@settings(max_examples=60, deadline=None)
@given(days_of_versions, st.lists(st.integers(1, 30), max_size=6))
def test_days_built_together_equal_each_day_built_alone(rows, cuts):
    """Staging built for several days in one pass (batches spanning days, cut anywhere) gives
    each day exactly what building it alone gives: rows, quarantine with its reasons, counts."""
    config = table("electrical_components")
    captured = {f"{d}-part": dt.datetime(2026, 1, 5, tzinfo=UTC) for d in CHUNK_DAYS}
    rows = sorted(rows, key=lambda r: r[0])  # a chunk reads its days' parts in day order
    together = ChunkBuilder(config, CHUNK_DAYS, {f"{d}-part": d for d in CHUNK_DAYS}, captured)
    whole, start = day_batch(rows), 0
    for size in cuts + [len(rows)]:
        batch = whole.slice(start, size).combine_chunks()
        if batch.num_rows:
            together.add(batch.to_batches()[0])
        start += size
    built = together.finish({})
    for index, day in enumerate(CHUNK_DAYS):
        alone = StagingBuilder(config, captured)
        own = [r for r in rows if r[0] == index]
        if own:
            alone.add(day_batch(own).combine_chunks().to_batches()[0])
        expected = alone.finish()
        assert built[day].staging.equals(expected.staging), day
        assert built[day].quarantine.equals(expected.quarantine), day
        assert built[day].counts == expected.counts, day


_int_pks = st.integers(min_value=-(2**40), max_value=2**40).map(str)
_iso_cursors = st.datetimes(
    min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
_pairs = st.tuples(
    st.one_of(_int_pks, st.sampled_from(["007", "7", "+7", "-0", "0", " 7"]), st.text(max_size=6)),
    st.one_of(_iso_cursors, st.sampled_from(["2026-01-02", "2026-01-02T00:00:00.000000Z"])),
)


@NO_DEADLINE
@given(
    held=st.lists(_pairs, max_size=40),
    asked=st.lists(_pairs, max_size=40),
    chunk=st.integers(min_value=1, max_value=7),
)
def test_a_version_set_marks_absent_exactly_the_versions_it_lacks(held, asked, chunk):
    from volt_assets.lib.capture.captured_versions import VersionSet

    # some asked versions are held, some differ from a held one only in how it is written
    asked += held[::2] + [("0" + p, c) for p, c in held[1::3]] + [(p, c[:10]) for p, c in held]
    # chunks as a CSV read leaves them, an empty one first
    pks = pa.chunked_array(
        [pa.array([], pa.string())]
        + [
            pa.array([p for p, _ in held[i : i + chunk]], pa.string())
            for i in range(0, len(held), chunk)
        ]
    )
    cursors = pa.chunked_array(
        [pa.array([], pa.string())]
        + [
            pa.array([c for _, c in held[i : i + chunk]], pa.string())
            for i in range(0, len(held), chunk)
        ]
    )
    versions = VersionSet(pks, cursors)
    packable = all(re.fullmatch(r"-?[1-9]\d*|0", p) and len(c) == 27 for p, c in held)
    assert (versions.sorted is not None) == packable  # packed whenever the texts allow it
    mask = versions.absent(
        pa.array([p for p, _ in asked], pa.string()), pa.array([c for _, c in asked], pa.string())
    )
    assert len(versions) == len(held)
    nothing = versions.absent(pa.array([], pa.string()), pa.array([], pa.string()))
    assert mask.type == nothing.type == pa.bool_()  # a filter, even when nothing is asked
    assert mask.to_pylist() == [pair not in set(held) for pair in asked]
