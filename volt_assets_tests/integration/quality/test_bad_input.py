"""A corpus of bad input through the whole pipeline: the database (raw -> staging -> marts), the
component pictures (images/component_images) and the landing CSVs (the sensor and its
processing function), on the real PostgreSQL and S3 endpoint.

Every input ends as a staged row (kept exactly, cleaned as documented), a quarantined row or
file with its reasons, or a clear error; the counts reconcile line by line (each raw line is
in exactly one of staging, quarantine or superseded, as the staging manifest counts it), and
the marts hold exactly the valid rows.

| input                                             | where                       | ends as                          |
| ------------------------------------------------- | --------------------------- | -------------------------------- |
| every refuse rule broken (alone and together)     | components, users, orders   | quarantine, every reason         |
| NaN in numeric columns (PostgreSQL numeric)       | price, voltage_rating, unit_price | quarantine: not a numeric     |
| Infinity (a constrained numeric cannot hold it)   | landing CSV                 | quarantine: not a numeric        |
| SQL-looking text, COPY's `\\.` and `\\N`, quotes  | names, emails, payment      | staged and in the marts verbatim |
| names of 10,000 characters (ASCII and emoji)      | components, users           | staged and in the marts verbatim |
| emoji, RTL, combining characters, ZWJ sequences   | names                       | staged verbatim                  |
| Unicode whitespace only                           | names                       | quarantine: blank                |
| jsonb nested 10,000 levels deep                   | specs                       | staged, the same JSON            |
| jsonb holding a number of 29 significant digits   | specs                       | staged with every digit (exact_json.py) |
| timestamps in year 1 and 9999                     | created_at, ordered_at      | staged exactly; cursor day right |
| an order placed in year 9999                      | ordered_at                  | staged; its ERROR check stops the marts of that day |
| one day with 50,000 updates of 5 keys             | orders (two captures)       | staging: the last version of each|
| a CSV of 50,000 rows of 5 keys                    | landing                     | 5 staged, the rest superseded or quarantined |
| CSV with BOM, `;` delimiter, no header, duplicated columns, binary garbage, Latin-1 | landing | accepted (BOM) or quarantined whole with the reason |
| landing keys with `../`                           | landing                     | moved to landing/rejected/ with the reason, never staged |
| pictures that are not images, names with `../`    | images folder               | refused with the reason, nothing uploaded |

The source holds one row per key (the app updates in place), so the lake sees as many versions
of a key as there were captures while it changed: the "many updates" day is 50,000 UPDATEs of
5 orders with a capture after each half (10 raw versions), and the same churn as a landing CSV
of 50,000 rows, where every version is visible. 50,000 rather than a million keeps the suite
fast; nothing in the code path depends on the number.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from volt_assets.defs.landing.sensors import landing_files_sensor, process_landing_object
from volt_assets.defs.resources import shared_resources
from volt_assets.devstack import stack
from volt_assets.lib.config.table_config import table
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets_tests.faults.env import Twin, drop_twin, make_twin, using_env, without_env
from volt_assets_tests.faults.lake import jsonl_lines
from volt_assets_tests.pipeline import create_source_schema, insert, materialize

UTC = dt.UTC
D = dt.date(2026, 1, 2)  # the corpus day: raw -> staging -> marts -> images
D_FUTURE = dt.date(2026, 1, 3)  # an order placed in year 9999
D_CHURN = dt.date(2026, 1, 4)  # 50,000 updates of 5 orders
CHURN_UPDATES = 50_000
CHURN_KEYS = 5
FILLER = {
    "electrical_components": 1_000,
    "users": 400,
    "orders": 1_000,
}  # keeps quarantine under 5 %
JSON_DEPTH = 10_000


def at(day: dt.date, hour: int, minute: int = 0, micro: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) + dt.timedelta(
        microseconds=micro
    )


def component(id_: int, **values) -> dict:
    row = {
        "id": id_,
        "sku": f"BAD-{id_}",
        "name": f"Component {id_}",
        "category": "fuses",
        "manufacturer": "ABB",
        "price": "10.00",
        "currency": "EUR",
        "created_at": at(D, 0),
        "updated_at": at(D, 12, id_ % 60, id_),
    }
    row.update(values)
    return row


def user(id_: int, **values) -> dict:
    row = {
        "id": id_,
        "email": f"user{id_}@example.com",
        "full_name": f"User {id_}",
        "country": "PL",
        "created_at": at(D, 0),
        "updated_at": at(D, 13, id_ % 60, id_),
    }
    row.update(values)
    return row


def order(id_: int, day: dt.date = D, **values) -> dict:
    row = {
        "id": id_,
        "user_id": 100_001,
        "component_id": 100_001,
        "quantity": 1,
        "unit_price": "5.00",
        "currency": "EUR",
        "status": "paid",
        "payment_method": "card",
        "ordered_at": at(day, 9, id_ % 60),
        "updated_at": at(day, 14, id_ % 60, id_),
    }
    row.update(values)
    return row


BLANK = "name: blank"

# (row, its reasons): every refuse rule broken, alone and together
REFUSED = {
    "electrical_components": [
        (component(1, name=None), [BLANK]),
        (component(2, name=""), [BLANK]),
        (component(3, name=" \t\u00a0\u2003\u3000\n "), [BLANK]),  # Unicode whitespace only
        (component(4, name="\v\x85\u2028"), [BLANK]),
        (component(5, price=None), ["price: missing"]),
        (component(6, price="0"), ["price: not positive: '0.00'"]),
        (component(7, price="-1.00"), ["price: not positive: '-1.00'"]),
        (component(8, price="NaN"), ["price: not a numeric(12,2): 'NaN'"]),
        (component(9, currency="EU"), ["currency: not a three-letter currency code: 'EU'"]),
        (component(10, currency=None), ["currency: not a three-letter currency code: 'null'"]),
        (component(11, currency="€€€"), ["currency: not a three-letter currency code: '€€€'"]),
        (component(12, currency="E1R"), ["currency: not a three-letter currency code: 'E1R'"]),
        (component(13, voltage_rating="NaN"), ["voltage_rating: not a numeric(10,2): 'NaN'"]),
        (
            component(14, name="   ", price="-3", currency="x"),
            [
                BLANK,
                "price: not positive: '-3.00'",
                "currency: not a three-letter currency code: 'X'",
            ],
        ),
    ],
    "users": [
        (user(1, email=None), ["email: not a valid email address: 'null'"]),
        (user(2, email=""), ["email: not a valid email address: ''"]),
        (user(3, email="no-at-sign"), ["email: not a valid email address: 'no-at-sign'"]),
        (user(4, email="a@b"), ["email: not a valid email address: 'a@b'"]),
        (
            user(5, email="two@@example.com"),
            ["email: not a valid email address: 'two@@example.com'"],
        ),
        (
            user(6, email="spaces in@example.com"),
            ["email: not a valid email address: 'spaces in@example.com'"],
        ),
        (user(7, email="ünï@example.com"), ["email: not a valid email address: 'ünï@example.com'"]),
        (
            user(8, email="'; DROP TABLE users;--"),
            ['email: not a valid email address: "\'; drop table users;--"'],
        ),
        (user(9, email="x@y.z"), ["email: not a valid email address: 'x@y.z'"]),
    ],
    "orders": [
        (order(1, quantity=None), ["quantity: missing"]),
        (order(2, quantity=0), ["quantity: not positive: '0'"]),
        (order(3, quantity=-5), ["quantity: not positive: '-5'"]),
        (order(4, quantity=100_001), ["quantity: above 100000: '100001'"]),
        (order(5, quantity=2_147_483_647), ["quantity: above 100000: '2147483647'"]),
        (order(6, unit_price=None), ["unit_price: missing"]),
        (order(7, unit_price="0"), ["unit_price: not positive: '0.00'"]),
        (order(8, unit_price="-0.01"), ["unit_price: not positive: '-0.01'"]),
        (order(9, unit_price="NaN"), ["unit_price: not a numeric(12,2): 'NaN'"]),
        (
            order(10, quantity=0, unit_price="NaN"),
            ["quantity: not positive: '0'", "unit_price: not a numeric(12,2): 'NaN'"],
        ),
    ],
}

SQL = "Robert'); DROP TABLE electrical_components;-- $$ COPY x TO PROGRAM 'id' $$ \\. \\N \"q\", 'a,b'"
LONG = "Ω" + "x" * 9_998 + "Ω"
EMOJI_LONG = "🔌⚡" * 5_000  # 10,000 characters, 40,000 bytes
RTL = "מפסק זרם \u200f قاطع الدائرة"
COMBINING = "Schu\u0308tz e\u0301 Z\u0337\u0322\u034ea\u0338l\u0334g\u0336o\u0337 👩\u200d🔧"
DEEP = '{"a": ' * JSON_DEPTH + '[1, 2.5, null, "é ⚡"]' + "}" * JSON_DEPTH

# weird but valid: staged, values exactly as given (after the documented cleaning)
VALID_COMPONENTS = [
    component(101, name=SQL, sku="'; DELETE FROM marts.dim_components;--"),
    component(102, name=LONG, description=LONG),
    component(103, name=EMOJI_LONG),
    component(104, name=RTL, manufacturer=RTL),
    component(105, name=COMBINING),
    component(106, name="Deep specs", specs=DEEP),
    component(107, name="Year one", created_at=dt.datetime(1, 1, 1, tzinfo=UTC)),
    component(
        108, name="Year 9999", created_at=dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    ),
    component(
        109,
        name="Extremes",
        price="9999999999.99",
        stock_quantity=2_147_483_647,
        voltage_rating="99999999.99",
    ),
    component(
        110, name="  Cheapest\tpart ", price="0.01", category="  Circuit-Breakers ", currency="eur"
    ),
    component(111, name="Picture with ../", image_filename="../../etc/passwd"),
    component(112, name="Picture outside", image_filename="../outside.png"),
    component(113, name="Text as png", image_filename="notes.png"),
    component(114, name="Empty jpg", image_filename="empty.jpg"),
    component(115, name="Garbage gif", image_filename="garbage.gif"),
    component(116, name="A real picture", image_filename="ok.png"),
    component(117, name="Backslashes", image_filename="..\\..\\win.ini"),
    component(
        118,
        name="Big numbers in specs",
        specs='{"big": 12345678901234567890.123456789, "scale": 2.50}',
    ),
]
VALID_USERS = [
    user(101, email="  Ann.O'Brien+shop@Example.CO.UK ", full_name=LONG),
    user(102, full_name=RTL + COMBINING, country="pl"),
    user(103, full_name=SQL, created_at=dt.datetime(1, 1, 1, tzinfo=UTC)),
]
VALID_ORDERS = [
    order(101, ordered_at=dt.datetime(1, 1, 1, tzinfo=UTC)),  # placed in year 1, changed on D
    order(102, status="  PAID ", payment_method=SQL, quantity=100_000, component_id=103),
    order(103, status="cancelled", component_id=101),
    order(104, user_id=101, component_id=102, unit_price="9999999999.99"),
    order(
        105, user_id=999_999, component_id=999_999
    ),  # unknown references: a WARN check, not a refusal
]
FUTURE_ORDER = order(
    201, day=D_FUTURE, ordered_at=dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


PICTURES = {
    "notes.png": b"<html>not a picture</html>\n",
    "empty.jpg": b"",
    "garbage.gif": bytes(random.Random(9).randrange(256) for _ in range(4096)),
    "ok.png": png(),
}


def seed_filler(conn) -> None:
    """Clean rows around the corpus (ids from 100,001), so the day's quarantine share stays under
    the gate's 5 % and the marts are built."""
    with conn.cursor() as cur:
        cur.execute(f"""
            INSERT INTO electrical_components (id, sku, name, category, price, currency, created_at, updated_at)
            SELECT 100000 + g, 'F-' || g, 'Filler ' || g, (ARRAY['fuses', 'relays', 'cables'])[g % 3 + 1],
                   1 + g % 500, 'EUR', timestamptz '{D} 00:00+00', timestamptz '{D} 01:00+00' + g * interval '1 ms'
            FROM generate_series(1, {FILLER["electrical_components"]}) g""")
        cur.execute(f"""
            INSERT INTO users (id, email, full_name, country, created_at, updated_at)
            SELECT 100000 + g, 'filler' || g || '@example.com', 'Filler ' || g, 'DE',
                   timestamptz '{D} 00:00+00', timestamptz '{D} 02:00+00' + g * interval '1 ms'
            FROM generate_series(1, {FILLER["users"]}) g""")
        cur.execute(f"""
            INSERT INTO orders (id, user_id, component_id, quantity, unit_price, currency, status, payment_method,
                                ordered_at, updated_at)
            SELECT 100000 + g, 100000 + g % {FILLER["users"]} + 1, 100000 + g % {FILLER["electrical_components"]} + 1,
                   g % 4 + 1, 2.50, 'EUR', 'paid', 'card', timestamptz '{D} 03:00+00' + g * interval '1 s',
                   timestamptz '{D} 04:00+00' + g * interval '1 ms'
            FROM generate_series(1, {FILLER["orders"]}) g""")
    conn.commit()


def churn(conn, first: int, last: int) -> None:
    """UPDATEs number first..last of the churn day, round robin over its 5 orders (one statement each)."""
    with conn.cursor() as cur:
        cur.execute(f"""
            DO $$ BEGIN
              FOR i IN {first}..{last} LOOP
                UPDATE orders SET quantity = i % 7 + 1, unit_price = 1 + (i % 100) / 100.0,
                       updated_at = timestamptz '{D_CHURN} 00:00+00' + i * interval '1 ms'
                WHERE id = 300 + i % {CHURN_KEYS};
              END LOOP;
            END $$""")
    conn.commit()


# --- landing files --------------------------------------------------------------------------------

COLUMNS = list(table("electrical_components").columns)


def csv_row(id_, **values) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update(
        id=str(id_),
        sku=f"L-{id_}",
        name=f"Landed {id_}",
        category="fuses",
        price="3.00",
        currency="EUR",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-02T10:00:00Z",
    )
    row.update({k: str(v) for k, v in values.items()})
    return row


def csv_bytes(rows: list[dict], columns=COLUMNS, delimiter=",", header=True) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    writer.writerows([[r.get(c, "") for c in columns] for r in rows])
    return out.getvalue().encode("utf-8")


def churn_csv() -> tuple[bytes, dict[int, dict]]:
    """50,000 rows of 5 keys, every 1,000th with a negative price; and the expected staged rows."""
    rows, latest = [], {}
    base = dt.datetime(2026, 1, 2, tzinfo=UTC)
    for i in range(CHURN_UPDATES):
        key, price = (
            500 + i % CHURN_KEYS,
            ("-1.00" if i % 1000 == 999 else f"{1 + i % 300}.{i % 100:02d}"),
        )
        stamp = (base + dt.timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
        rows.append(csv_row(key, price=price, name=f"v{i}", updated_at=stamp))
        if not price.startswith("-"):
            latest[key] = {"name": f"v{i}", "price": Decimal(price)}
    return csv_bytes(rows), latest


BAD_CSV_ROWS = [
    csv_row(601),
    csv_row(602, name=LONG),
    csv_row(603, price="Infinity"),
    csv_row(604, price="-Infinity"),
    csv_row("", name="no id"),
    csv_row(605, name=SQL, currency="eur"),
    csv_row(606, updated_at="2026-01-02 10:00"),
]
LANDING = {  # file name -> (bytes, whole-file reason or None)
    "bom-mixed.csv": (codecs.BOM_UTF8 + csv_bytes(BAD_CSV_ROWS) + b"607,too,few\r\n", None),
    "semicolons.csv": (
        csv_bytes([csv_row(1)], delimiter=";"),
        "file: the delimiter is not a comma",
    ),
    "no-header.csv": (csv_bytes([csv_row(1), csv_row(2)], header=False), "file: missing columns: "),
    "duplicated.csv": (csv_bytes([], COLUMNS + ["price"]), "file: duplicated columns: price"),
    "garbage.csv": (
        bytes(random.Random(7).randrange(256) for _ in range(2048)) + b"\x00",
        "file: binary content",
    ),
    "latin1.csv": (
        csv_bytes([csv_row(1, name="Schütz")]).decode().encode("latin-1"),
        "file: not UTF-8 text",
    ),
    "..csv": (csv_bytes([csv_row(700)]), None),  # a name of dots stays a name
}
ESCAPING = [
    "landing/electrical_components/../../staging/electrical_components/dt=2026-01-02/evil.csv",
    "landing/electrical_components/sub/../evil.csv",
    "landing/../landing/users/evil.csv",
]


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class Corpus:
    twin: Twin
    main: dg.ExecuteInProcessResult
    future: dg.ExecuteInProcessResult
    landing: dict = field(default_factory=dict)  # file name -> process_landing_object summary
    landing_requests: list = field(default_factory=list)
    escaping_errors: dict = field(default_factory=dict)
    churn_expected: dict = field(default_factory=dict)
    churn_csv_expected: dict = field(default_factory=dict)

    def manifest(self, key: str) -> dict:
        return json.loads(self.twin.read_object(key))

    def parquet(self, key: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.twin.read_object(key)))


def all_keys() -> list[str]:
    from volt_assets.definitions import build_definitions

    keys = [k.to_user_string() for k in build_definitions().resolve_all_asset_keys()]
    return sorted(k for k in keys if k.split("/")[0] in ("raw", "staging", "marts", "images"))


@pytest.fixture(scope="module")
def corpus(pg_server, s3_endpoint, tmp_path_factory) -> Corpus:
    home = tmp_path_factory.mktemp("bad-input")
    images = home / "images"
    images.mkdir()
    for name, body in PICTURES.items():
        (images / name).write_bytes(body)
    (home / "outside.png").write_bytes(png())  # what `../outside.png` would reach
    base = {
        "AWS_ACCESS_KEY_ID": stack.S3_DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": stack.S3_DUMMY_KEY,
        "AWS_DEFAULT_REGION": stack.S3_REGION,
        "VOLT_PARTITIONS_START": "2026-01-01",
        "VOLT_USE_STACK": "0",
        "VOLT_IMAGES_DIR": str(images),
    }
    twin = make_twin(pg_server, s3_endpoint, base, home)
    conn = twin.connect()
    create_source_schema(conn)
    seed_filler(conn)
    for name, rows in REFUSED.items():
        insert(conn, name, [r for r, _ in rows])
    insert(conn, "electrical_components", VALID_COMPONENTS)
    insert(conn, "users", VALID_USERS)
    insert(conn, "orders", VALID_ORDERS + [FUTURE_ORDER])
    insert(conn, "orders", [order(300 + k, day=D_CHURN) for k in range(CHURN_KEYS)])
    try:
        with without_env(), using_env(twin.env):
            keys = all_keys()
            main = materialize(keys, D.isoformat(), raise_on_error=False)
            future = materialize(
                [k for k in keys if not k.startswith("images/")],
                D_FUTURE.isoformat(),
                raise_on_error=False,
            )
            churn(conn, 1, CHURN_UPDATES // 2)
            assert materialize(["raw/orders"], D_CHURN.isoformat()).success
            churn(conn, CHURN_UPDATES // 2 + 1, CHURN_UPDATES)
            assert materialize(["raw/orders", "staging/orders"], D_CHURN.isoformat()).success
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT id, quantity, unit_price, updated_at FROM orders WHERE id >= 300 AND id < 310"
                )
                churned = {r[0]: r[1:] for r in cur.fetchall()}
            corpus = Corpus(twin, main, future, churn_expected=churned)
            corpus.landing_requests, corpus.landing, corpus.escaping_errors = run_landing(twin)
            corpus.churn_csv_expected = churn_csv()[1]
        yield corpus
    finally:
        conn.close()
        drop_twin(pg_server, twin)


def run_landing(twin: Twin):
    s3 = twin.s3
    for name, (body, _) in LANDING.items():
        s3.put_object(Bucket=twin.bucket, Key=f"landing/electrical_components/{name}", Body=body)
    s3.put_object(
        Bucket=twin.bucket, Key="landing/electrical_components/churn.csv", Body=churn_csv()[0]
    )
    for key in ESCAPING:
        s3.put_object(Bucket=twin.bucket, Key=key, Body=csv_bytes([csv_row(666)]))
    lake = shared_resources()["lake"]
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": lake}
    ) as context:
        requests = landing_files_sensor(context).run_requests
    store = LakeStore(twin.s3, twin.bucket)  # the function the landing job runs, on the real bucket
    summaries = {}
    for request in requests:
        key = request.run_config["ops"]["process_landing_file"]["config"]["key"]
        summaries[key if key in ESCAPING else key.rsplit("/", 1)[-1]] = process_landing_object(
            store, key
        )
    errors = {}
    for key in ("staging/electrical_components/evil.csv", "landing/processed/users/x.csv"):
        try:
            process_landing_object(store, key)
        except dg.Failure as exc:
            errors[key] = exc.description
    return requests, summaries, errors


# --- helpers -------------------------------------------------------------------------------------------


def by_id(table_: pa.Table, column: str = "id") -> dict:
    return {r[column]: r for r in table_.to_pylist()}


def folder(layer: str, name: str, day: dt.date) -> str:
    return f"{layer}/{name}/dt={day.isoformat()}/"


def raw_versions(corpus: Corpus, name: str, day: dt.date) -> list[tuple[str, str]]:
    """(pk, cursor) of every line raw D's manifest lists. Read with patterns, not json.loads:
    Python's parser gives up on the 10,000-level specs (PostgreSQL writes the key first and the
    cursor as the one top-level `"updated_at"` string; the corpus nests only `"a"`)."""
    import gzip

    manifest = corpus.manifest(folder("raw", name, day) + "_manifest.json")
    out = []
    for file in manifest["files"]:
        if file.endswith(".jsonl.gz"):
            for line in jsonl_lines(
                gzip.decompress(corpus.twin.read_object(folder("raw", name, day) + file))
            ):
                pk = re.match(r'\{"id":(\d+),', line).group(1)
                found = re.findall(r'"updated_at":"([^"]+)"', line)
                assert len(found) == 1, line[:300] + " ... " + line[-300:]
                cursor = found[0]
                out.append((pk, cursor))
    return out


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the database corpus ---------------------------------------------------------------------------------


def test_the_corpus_day_runs_end_to_end(corpus):
    """raw -> staging -> marts -> images for D succeed: bad rows are the quarantine's business,
    not a reason to stop the day."""
    failed = [e.step_key for e in corpus.main.all_events if e.event_type_value == "STEP_FAILURE"]
    assert corpus.main.success, failed
    materialized = {
        e.asset_key.to_user_string() for e in corpus.main.get_asset_materialization_events()
    }
    assert {
        "marts/dim_components",
        "marts/daily_category_sales",
        "marts/users_mart",
        "images/component_images",
    } <= materialized


@pytest.mark.parametrize("name", ["electrical_components", "users", "orders"])
def test_every_broken_rule_is_quarantined_with_all_its_reasons(corpus, name):
    quarantine = corpus.parquet(folder("quarantine", name, D) + "part-00000.parquet")
    reasons = {int(r["id"]): r["_reasons"] for r in quarantine.to_pylist()}
    expected = {row["id"]: why for row, why in REFUSED[name]}
    assert {k: sorted(v) for k, v in reasons.items()} == {k: sorted(v) for k, v in expected.items()}
    staged = corpus.parquet(folder("staging", name, D) + "part-00000.parquet")
    assert not set(staged["id"].to_pylist()) & set(expected)


@pytest.mark.parametrize("name", ["electrical_components", "users", "orders"])
def test_every_raw_line_is_in_exactly_one_of_staging_quarantine_superseded(corpus, name):
    for day in (D, D_FUTURE, D_CHURN) if name == "orders" else (D,):
        config = table(name)
        lines = raw_versions(corpus, name, day)
        manifest = corpus.manifest(folder("staging", name, day) + "_manifest.json")
        counts = manifest["counts"]
        staged = corpus.parquet(folder("staging", name, day) + "part-00000.parquet")
        q_key = folder("quarantine", name, day) + "part-00000.parquet"
        quarantined = (
            corpus.parquet(q_key).to_pylist() if q_key in corpus.twin.list_keys(q_key) else []
        )
        staged_cursor = {
            str(r["id"]): iso(r[config.cursor]) for r in staged.to_pylist() if not r["_deleted"]
        }
        in_quarantine = {(r[config.primary_key], r[config.cursor]) for r in quarantined}
        where = {}
        for pk, cursor in lines:
            places = []
            if staged_cursor.get(pk) == cursor:
                places.append("staging")
            if (pk, cursor) in in_quarantine:
                places.append("quarantine")
            if pk in staged_cursor and staged_cursor[pk] > cursor:
                places.append("superseded")
            assert len(places) == 1, (day, pk, cursor, places)
            where[places[0]] = where.get(places[0], 0) + 1
        assert counts["raw_rows"] == len(lines) == sum(where.values())
        assert (counts["staged_rows"], counts["quarantined_rows"], counts["superseded_rows"]) == (
            where.get("staging", 0),
            where.get("quarantine", 0),
            where.get("superseded", 0),
        )
        raw_manifest = corpus.manifest(folder("raw", name, day) + "_manifest.json")
        assert raw_manifest["row_count"] == len(lines) == len(set(lines))


def json_layout_removed(text: str) -> str:
    """JSON text without the whitespace between tokens; spaces inside strings are kept (json.loads
    would do, were it not for its recursion limit on 10,000 levels)."""
    out, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in " \t\r\n":
            continue
        out.append(ch)
    return "".join(out)


# the names the README's cleaning makes of VALID_COMPONENTS' names (trim, collapse inner runs);
# every other name has no run of whitespace and no edge space, so it is staged as given
CLEANED_NAMES = {110: "Cheapest part"}


def test_odd_but_valid_values_are_staged_exactly(corpus):
    staged = by_id(
        corpus.parquet(folder("staging", "electrical_components", D) + "part-00000.parquet")
    )
    assert json_layout_removed('{"a" : [1, "x  y\\" z"]}') == '{"a":[1,"x  y\\" z"]}'
    for row in VALID_COMPONENTS:
        got = staged[row["id"]]
        assert got["name"] == CLEANED_NAMES.get(row["id"], row["name"]), row["id"]
        assert got["created_at"] == row["created_at"] and got["updated_at"] == row["updated_at"]
    assert (
        staged[101]["name"] == SQL
        and staged[101]["sku"] == "'; DELETE FROM marts.dim_components;--"
    )
    assert (
        staged[102]["name"] == LONG and staged[102]["description"] == LONG and len(LONG) == 10_000
    )
    assert staged[103]["name"] == EMOJI_LONG and len(EMOJI_LONG) == 10_000
    assert (
        staged[104]["name"] == RTL and staged[105]["name"] == COMBINING
    )  # no normalisation of what is not space
    assert json_layout_removed(staged[106]["specs"]) == json_layout_removed(
        DEEP
    )  # 10,000 levels, the same JSON
    assert '"é ⚡"' in staged[106]["specs"]  # the space inside the string is kept
    assert staged[107]["created_at"].year == 1 and staged[108]["created_at"].year == 9999
    assert (staged[109]["price"], staged[109]["stock_quantity"], staged[109]["voltage_rating"]) == (
        Decimal("9999999999.99"),
        2_147_483_647,
        Decimal("99999999.99"),
    )
    assert (
        staged[110]["name"],
        staged[110]["price"],
        staged[110]["category"],
        staged[110]["currency"],
    ) == ("Cheapest part", Decimal("0.01"), "circuit-breakers", "EUR")
    assert (
        staged[111]["image_filename"] == "../../etc/passwd"
    )  # kept exactly; the picture is refused
    users = by_id(corpus.parquet(folder("staging", "users", D) + "part-00000.parquet"))
    assert (
        users[101]["email"] == "ann.o'brien+shop@example.co.uk" and users[101]["full_name"] == LONG
    )
    assert users[102]["country"] == "PL" and users[103]["created_at"].year == 1
    orders = by_id(corpus.parquet(folder("staging", "orders", D) + "part-00000.parquet"))
    assert orders[101]["ordered_at"] == dt.datetime(1, 1, 1, tzinfo=UTC)
    assert (orders[102]["status"], orders[102]["payment_method"]) == ("paid", SQL.lower())
    assert orders[105]["user_id"] == 999_999  # an unknown reference is reported, not refused


def test_the_marts_hold_exactly_the_valid_rows_verbatim(corpus):
    conn = corpus.twin.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT component_id, name, sku, price FROM marts.dim_components WHERE is_current"
            )
            dim = {r[0]: r[1:] for r in cur.fetchall()}
            cur.execute(
                "SELECT category, orders_count, units_sold, revenue FROM marts.daily_category_sales WHERE dt = %s",
                (D,),
            )
            sales = {r[0]: r[1:] for r in cur.fetchall()}
            cur.execute("SELECT user_id, email FROM marts.users_mart WHERE dt = %s", (D,))
            users = dict(cur.fetchall())
            cur.execute(
                "SELECT count(*) FROM electrical_components"
            )  # the SQL text did nothing anywhere
            assert cur.fetchone()[0] == FILLER["electrical_components"] + len(
                REFUSED["electrical_components"]
            ) + len(VALID_COMPONENTS)
    finally:
        conn.close()
    assert set(dim) == {r["id"] for r in VALID_COMPONENTS} | {
        100_000 + g for g in range(1, FILLER["electrical_components"] + 1)
    }
    assert dim[101] == (SQL, "'; DELETE FROM marts.dim_components;--", Decimal("10.00"))
    assert (
        dim[102][0] == LONG
        and dim[103][0] == EMOJI_LONG
        and dim[104][0] == RTL
        and dim[105][0] == COMBINING
    )
    assert dim[109][2] == Decimal("9999999999.99")
    assert 101 in users and users[101] == "ann.o'brien+shop@example.co.uk"
    assert not set(users) & {row["id"] for row, _ in REFUSED["users"]}
    # Sales of D: valid orders placed on D and not cancelled (101 was placed in year 1, 103 is cancelled)
    valid = [o for o in VALID_ORDERS if o["id"] in (102, 104, 105)]
    revenue = sum(Decimal(o["unit_price"]) * o["quantity"] for o in valid)
    revenue += sum(Decimal("2.50") * (g % 4 + 1) for g in range(1, FILLER["orders"] + 1))
    assert sum(v[2] for v in sales.values()) == revenue
    assert sum(v[0] for v in sales.values()) == len(valid) + FILLER["orders"]


def test_an_order_placed_in_year_9999_is_staged_and_stops_the_marts_of_its_day(corpus):
    """ordered_at in the future is an ERROR check (not a refusal): the row is kept, the day's
    marts are not built, and the check says which row."""
    assert not corpus.future.success
    staged = by_id(corpus.parquet(folder("staging", "orders", D_FUTURE) + "part-00000.parquet"))
    assert staged[201]["ordered_at"] == FUTURE_ORDER["ordered_at"]
    [check] = [
        e
        for e in corpus.future.get_asset_check_evaluations()
        if e.check_name == "ordered_at_not_in_future"
        and e.asset_key == dg.AssetKey(["staging", "orders"])
    ]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description == "1 of 1 rows (100.0%) broken, on 2026-01-03"
    assert check.metadata["samples"].value == [
        {
            "dt": "2026-01-03",
            "key": "201",
            "reason": "ordered_at: in the future: '9999-12-31 23:59:59.999999+00:00'",
        }
    ]
    materialized = {
        e.asset_key.to_user_string() for e in corpus.future.get_asset_materialization_events()
    }
    assert "staging/orders" in materialized
    assert not materialized & {
        "marts/daily_category_sales",
        "marts/daily_component_sales",
        "marts/users_mart",
    }


def test_fifty_thousand_updates_of_five_keys_stage_their_last_versions(corpus):
    staged = by_id(corpus.parquet(folder("staging", "orders", D_CHURN) + "part-00000.parquet"))
    assert {
        k: (v["quantity"], v["unit_price"], v["updated_at"]) for k, v in staged.items()
    } == corpus.churn_expected
    counts = corpus.manifest(folder("staging", "orders", D_CHURN) + "_manifest.json")["counts"]
    assert counts == {
        "raw_rows": 2 * CHURN_KEYS,
        "staged_rows": CHURN_KEYS,
        "quarantined_rows": 0,
        "superseded_rows": CHURN_KEYS,
        "tombstones": 0,
    }  # two captures of five keys


def test_jsonb_numbers_keep_every_digit_in_staging(corpus):
    """DuckDB reads JSON numbers as doubles (12345678901234567890.123456789 would become
    12345678901234567000.0); the capture marks such text and staging takes those values from
    the raw line as written (exact_json.py). Declared numerics are at most 15 digits (below)."""
    staged = by_id(
        corpus.parquet(folder("staging", "electrical_components", D) + "part-00000.parquet")
    )
    assert json.loads(staged[118]["specs"], parse_float=Decimal) == {
        "big": Decimal("12345678901234567890.123456789"),
        "scale": Decimal("2.50"),
    }


def test_a_numeric_wider_than_raw_can_carry_exactly_is_refused_by_the_configuration(tmp_path):
    """JSON numbers come back from raw through doubles: 15 digits exactly, 16 not."""
    from volt_assets.lib.config.table_config import parse_config
    from volt_assets.lib.staging.raw_reader import read_text_batches

    def config(declared: str):
        return parse_config(
            {
                "tables": {
                    "t": {
                        "primary_key": "id",
                        "cursor": "u",
                        "columns": {"id": "bigint", "u": "timestamptz", "amount": declared},
                    }
                }
            }
        )["t"]

    path = tmp_path / "part.jsonl"
    path.write_text(
        '{"id":1,"u":"2026-01-02T00:00:00.000000Z","amount":9999999999999.99}\n'
        '{"id":2,"u":"2026-01-02T00:00:00.000000Z","amount":99999999999999.99}\n'
    )
    [batch] = read_text_batches(config("numeric(15,2)"), [path])
    assert batch.column("amount").to_pylist() == [
        "9999999999999.99",
        "99999999999999.98",
    ]  # the 16th digit is lost
    with pytest.raises(ValueError, match="at most numeric\\(15,s\\)"):
        config("numeric(16,2)").source_schema()


def test_a_key_or_cursor_whose_text_is_not_exact_is_refused_by_the_configuration():
    """Raw compares captured versions by their key and cursor text: a numeric or floating key
    (1.50 read back as 1.5) would capture the same versions twice, so the configuration refuses it."""
    from volt_assets.lib.config.table_config import parse_config

    def config(pk_type: str, cursor_type: str = "timestamptz"):
        return parse_config(
            {
                "tables": {
                    "t": {
                        "primary_key": "id",
                        "cursor": "u",
                        "columns": {"id": pk_type, "u": cursor_type},
                    }
                }
            }
        )["t"]

    assert config("bigint").primary_key == config("text").primary_key == "id"
    for pk_type in ("numeric(12,2)", "double precision"):
        with pytest.raises(
            ValueError, match=f"table 't': primary_key 'id' is {re.escape(pk_type)}"
        ):
            config(pk_type)
    with pytest.raises(ValueError, match="cursor 'u' is jsonb"):
        config("bigint", "jsonb")


# --- pictures -------------------------------------------------------------------------------------------


def test_pictures_that_are_not_images_or_escape_the_folder_are_refused(corpus):
    [event] = [
        e
        for e in corpus.main.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["images", "component_images"])
    ]
    metadata = event.materialization.metadata
    refused = {s["component_id"]: s["reason"] for s in metadata["refused_samples"].value}
    assert refused == {
        111: "unsafe file name: path separator",
        112: "unsafe file name: path separator",
        113: "not a JPEG, PNG, GIF or WebP image",
        114: "empty file",
        115: "not a JPEG, PNG, GIF or WebP image",
        117: "unsafe file name: backslash",
    }
    images = corpus.twin.list_keys("images/")
    assert images == ["images/components/116/ok.png", "images/components/116/thumb_ok.png"]
    outside = [
        k
        for k in corpus.twin.list_keys()
        if not k.startswith(
            (
                "raw/",
                "staging/",
                "quarantine/",
                "mart/",
                "quality/",
                "state/",
                "images/components/",
                "landing/",
            )
        )
    ]
    assert outside == []


# --- landing files ------------------------------------------------------------------------------------


def test_landing_keys_with_dot_dot_are_moved_aside_and_other_keys_fail_clearly(corpus):
    taken = sorted(
        r.run_config["ops"]["process_landing_file"]["config"]["key"]
        for r in corpus.landing_requests
    )
    assert taken == sorted(
        [f"landing/electrical_components/{n}" for n in LANDING]
        + ["landing/electrical_components/churn.csv"]
        + ESCAPING
    )
    for key in ESCAPING:
        summary = corpus.landing[key]
        assert summary["outcome"] == "rejected" and "an unsafe key" in summary["reason"]
        moved = summary["rejected_key"]
        assert moved.startswith("landing/rejected/dt=") and moved.count("/") == 3
        assert corpus.twin.read_object(moved) == csv_bytes([csv_row(666)])
    assert not set(ESCAPING) & set(corpus.twin.list_keys("landing/"))
    assert not any("666" in k for k in corpus.twin.list_keys("staging/"))
    assert set(corpus.escaping_errors) == {
        "staging/electrical_components/evil.csv",
        "landing/processed/users/x.csv",
    }
    for key, message in corpus.escaping_errors.items():
        assert "is not an object dropped in landing/" in message and key in message


def test_bad_landing_files_are_quarantined_whole_with_the_reason(corpus):
    for name, (_, reason) in LANDING.items():
        summary = corpus.landing[name]
        stem = name.removesuffix(".csv")
        day = summary["received_day"]
        processed = summary["processed_key"]
        assert processed.startswith(f"landing/processed/electrical_components/dt={day}/{stem}-")
        assert processed.endswith(".csv")
        assert (
            corpus.twin.read_object(summary["processed_key"]) == LANDING[name][0]
        )  # nothing is lost
        if reason is None:
            assert summary["outcome"] == "accepted", name
            continue
        assert summary["outcome"] == "refused", name
        quarantined = summary["quarantine_key"]
        assert quarantined.startswith(f"quarantine/uploads/electrical_components/dt={day}/{stem}-")
        [record] = corpus.parquet(quarantined).to_pylist()
        assert any(r.startswith(reason) for r in record["_reasons"]), (name, record["_reasons"])
        assert "staging_key" not in summary
        assert not any(
            k.rsplit("/", 1)[-1].startswith(f"{stem}-")
            for k in corpus.twin.list_keys("staging/uploads/")
        )


def test_bad_rows_of_a_landing_file_are_quarantined_and_the_rest_staged(corpus):
    summary = corpus.landing["bom-mixed.csv"]
    staged = by_id(corpus.parquet(summary["staging_key"]))
    assert sorted(staged) == [601, 602, 605]
    assert (
        staged[602]["name"] == LONG
        and staged[605]["name"] == SQL
        and staged[605]["currency"] == "EUR"
    )
    quarantined = {
        r["_line"]: r["_reasons"] for r in corpus.parquet(summary["quarantine_key"]).to_pylist()
    }
    assert quarantined == {
        4: ["price: not a numeric(12,2): 'Infinity'"],
        5: ["price: not a numeric(12,2): '-Infinity'"],
        6: ["id: missing"],
        8: ["updated_at: not a timestamptz: '2026-01-02 10:00'"],
        9: [f"line 9: 3 fields, the header has {len(COLUMNS)}"],
    }
    assert (
        summary["rows"]
        == summary["staged_rows"] + summary["quarantined_rows"] + summary["superseded_rows"]
        == 8
    )


def test_a_landing_csv_of_fifty_thousand_versions_of_five_keys(corpus):
    summary = corpus.landing["churn.csv"]
    staged = by_id(corpus.parquet(summary["staging_key"]))
    assert {
        k: {"name": v["name"], "price": v["price"]} for k, v in staged.items()
    } == corpus.churn_csv_expected
    assert (
        summary["rows"],
        summary["staged_rows"],
        summary["quarantined_rows"],
        summary["superseded_rows"],
    ) == (
        CHURN_UPDATES,
        CHURN_KEYS,
        CHURN_UPDATES // 1000,
        CHURN_UPDATES - CHURN_UPDATES // 1000 - CHURN_KEYS,
    )
