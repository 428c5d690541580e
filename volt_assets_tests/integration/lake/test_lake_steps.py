"""The lake's named steps, each on its own: which captured versions are new, raw D's manifest,
the mass-delete refusal, the IO manager's per-day accounting, its log lines and its uploads."""

import datetime as dt
import gzip
import json

import pyarrow as pa
import pytest

from volt_assets.defs.lake.io_manager import (
    DETAILED_WRITES,
    FolderUploader,
    RunFolders,
    RunTally,
    WriteProgress,
)
from volt_assets.lib.capture.raw_days import (
    VERSIONS_SCHEMA,
    MassDeleteRefused,
    _filter_lines,
    absent_integer_keys,
    cursor_bounds,
    new_versions,
    raw_manifest,
    refuse_mass_delete,
    tag_versions,
)
from volt_assets.lib.config.table_config import load_tables
from volt_assets.lib.store.lake_store import FolderWrite, LakeStore

COMPONENTS = load_tables()["electrical_components"]  # id bigint, cursor updated_at
D = dt.date(2026, 1, 2)
T1, T2, T3 = (
    "2026-01-02T08:00:00.000000Z",
    "2026-01-02T09:30:00.000000Z",
    "2026-01-02T17:45:00.000000Z",
)


def versions(*pairs: tuple[str, str], file: str = "part-20260102T000000000000Z") -> pa.Table:
    return pa.table(
        {"pk": [p for p, _ in pairs], "cursor": [c for _, c in pairs], "file": [file] * len(pairs)},
        schema=VERSIONS_SCHEMA,
    )


# --- the raw capture's steps ------------------------------------------------------------


def test_new_versions_are_the_pk_cursor_pairs_raw_does_not_hold():
    """A re-capture read key 1 unchanged, key 2 changed again, key 3 new: keys 2 (its second
    version) and 3 are new; a key equal to another's pk+cursor text never collides."""
    captured = versions(("1", T1), ("2", T1), ("12", T1))
    extracted = pa.table({"pk": ["1", "2", "3", "1"], "cursor": [T1, T2, T1, T3]})

    fresh = new_versions(extracted, captured)

    assert list(zip(fresh["pk"].to_pylist(), fresh["cursor"].to_pylist())) == [
        ("2", T2),
        ("3", T1),
        ("1", T3),
    ]
    assert new_versions(extracted, versions()).num_rows == 4  # nothing captured yet: all new
    assert new_versions(pa.table({"pk": ["1"], "cursor": [T1]}), captured).num_rows == 0


def test_a_capture_tags_its_versions_and_the_index_gives_the_cursor_range():
    tagged = tag_versions(pa.table({"pk": ["7", "8"], "cursor": [T2, T1]}), "part-X")
    assert tagged.to_pylist() == [
        {"pk": "7", "cursor": T2, "file": "part-X"},
        {"pk": "8", "cursor": T1, "file": "part-X"},
    ]
    assert cursor_bounds(tagged) == (T1, T2)
    assert cursor_bounds(versions()) == (None, None)


def test_a_recapture_keeps_only_the_lines_of_new_versions(tmp_path):
    part = tmp_path / "part-1.jsonl.gz"
    lines = [
        {"id": 1, "updated_at": T1, "name": "fuse"},
        {"id": 2, "updated_at": T2, "name": "relay"},
        {"id": 3, "updated_at": T1, "name": "cable"},
    ]
    with gzip.open(part, "wt") as out:
        out.writelines(json.dumps(line) + "\n" for line in lines)
    (tmp_path / "out").mkdir()

    kept, rows = _filter_lines([part], COMPONENTS, {("2", T2), ("3", T1)}, tmp_path / "out")

    assert rows == 2 and kept == [tmp_path / "out" / "part-1.jsonl.gz"]
    with gzip.open(kept[0], "rt") as src:
        assert [json.loads(line)["name"] for line in src] == ["relay", "cable"]
    assert _filter_lines([part], COMPONENTS, {("9", T1)}, tmp_path / "out") == ([], 0)


def test_raw_manifest_adds_the_capture_to_what_the_day_had():
    previous = {
        "extractions": [{"extracted_at": "2026-01-02T23:00:00+00:00", "rows_added": 2}],
        "files": {"part-a.jsonl.gz": {"bytes": 10}, "_versions-a.parquet": {"bytes": 5}},
        "deletes": {"file": "_deletes-a.parquet", "count": 1},
    }
    extraction = {"extracted_at": "2026-01-03T02:00:00+00:00", "rows_added": 1}
    window = (dt.datetime(2026, 1, 2, tzinfo=dt.UTC), dt.datetime(2026, 1, 3, tzinfo=dt.UTC))
    index = versions(("1", T1), ("2", T1), ("2", T3))

    manifest = raw_manifest(
        COMPONENTS,
        D,
        window,
        previous,
        index,
        extraction,
        ["id", "updated_at"],
        superseded=["_versions-a.parquet"],
    )

    assert manifest == {
        "table": "electrical_components",
        "dt": "2026-01-02",
        "sync": "incremental",
        "window": ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"],
        "row_count": 3,
        "cursor_column": "updated_at",
        "cursor_min": T1,
        "cursor_max": T3,
        "extracted_at": "2026-01-03T02:00:00+00:00",
        "columns": ["id", "updated_at"],
        "extractions": [previous["extractions"][0], extraction],
        "files": {"part-a.jsonl.gz": {"bytes": 10}},
        "deletes": {"file": "_deletes-a.parquet", "count": 1},
    }
    first = raw_manifest(COMPONENTS, D, (None, window[1]), {}, versions(), extraction, [], [])
    assert first["window"] == [
        None,
        "2026-01-03T00:00:00+00:00",
    ]  # the first partition opens the lake
    assert (first["row_count"], first["cursor_min"], first["files"], first["deletes"]) == (
        0,
        None,
        {},
        None,
    )


def test_a_mass_delete_over_the_share_is_refused_and_the_share_itself_is_not():
    refuse_mass_delete(COMPONENTS, 10, 100)  # 10% = max_delete_share: allowed
    refuse_mass_delete(COMPONENTS, 0, 0)
    with pytest.raises(MassDeleteRefused) as refused:
        refuse_mass_delete(COMPONENTS, 11, 100)
    assert str(refused.value) == (
        "refusing to tombstone 11 of 100 known electrical_components keys "
        "(11.0% > max_delete_share 10%): the source looks broken or truncated. "
        "If the deletes are real, raise max_delete_share in tables.yaml."
    )


def test_absent_integer_keys_are_the_known_keys_the_source_lacks():
    import numpy as np

    known = np.array([1, 2, 3, 5, 8, 13], np.int64)
    live = pa.array([2, 3, 4, 8, None, 21], pa.int64())
    assert absent_integer_keys(known, live, pa.int64()).tolist() == [1, 5, 13]
    assert absent_integer_keys(known, pa.array([], pa.int64()), pa.int64()).tolist() == [
        1,
        2,
        3,
        5,
        8,
        13,
    ]


# --- the IO manager's steps -------------------------------------------------------------


def uri(key: str) -> str:
    return f"s3://lake/{key}"


def write(day: str, layer: str, rows: int, **kwargs) -> FolderWrite:
    return FolderWrite(
        day=dt.date.fromisoformat(day),
        prefix=f"{layer}/t/dt={day}/",
        files={},
        manifest={},
        rows=rows,
        **kwargs,
    )


RUN = [  # a two-day raw run: a late-row merge into the day before, D kept, D+1 written, tombstones
    (write("2026-01-01", "raw", 4, primary=False, cursor_range=(T1, "2026-01-01T23:00:00Z")), 300),
    (write("2026-01-02", "raw", 10, unchanged=True, cursor_range=(T1, T3)), 0),
    (
        write(
            "2026-01-03",
            "raw",
            7,
            cursor_range=("2026-01-03T01:00:00Z", "2026-01-03T02:00:00Z"),
            metadata={"raw_rows": 7},
        ),
        1200,
    ),
    (write("2026-01-03", "raw", 0, primary=False), 150),
    # a second write into one day, inside that day's cursor range: neither end moves
    (
        write(
            "2026-01-03",
            "raw",
            2,
            primary=False,
            cursor_range=("2026-01-03T01:30:00Z", "2026-01-03T01:45:00Z"),
        ),
        100,
    ),
]


def test_the_tally_gives_each_day_its_own_figures_and_the_run_its_totals():
    tally = RunTally(uri)
    for folder, size in RUN:
        tally.add(folder, size)

    assert tally.days == {
        "2026-01-01": {
            "rows": 0,
            "bytes": 300,
            "cursor_min": T1,
            "cursor_max": "2026-01-01T23:00:00Z",
        },
        "2026-01-02": {
            "rows": 10,
            "bytes": 0,
            "s3_uri": "s3://lake/raw/t/dt=2026-01-02/",
            "cursor_min": T1,
            "cursor_max": T3,
        },
        "2026-01-03": {
            "rows": 7,
            "bytes": 1450,
            "s3_uri": "s3://lake/raw/t/dt=2026-01-03/",
            "raw_rows": 7,
            "cursor_min": "2026-01-03T01:00:00Z",
            "cursor_max": "2026-01-03T02:00:00Z",
        },
    }
    assert (tally.rows, tally.bytes, tally.written_rows, tally.folders, tally.seen) == (
        17,
        1750,
        7,
        4,
        5,
    )
    metadata = tally.metadata("s3://lake/raw/t/", 2.0)
    assert {k: v.value for k, v in metadata.items()} == {
        "rows": 17,
        "bytes": 1750,
        "s3_uri": "s3://lake/raw/t/",
        "partitions_written": 3,
        "duration_seconds": 2.0,
        "rows_per_second": 3.5,
        "cursor_min": T1,
        "cursor_max": "2026-01-03T02:00:00Z",
    }
    assert RunTally(uri).metadata("s3://lake/raw/t/", 0.0)["rows_per_second"].value == 0.0


class Lines:
    """A log that keeps its lines (what the Dagster log would store)."""

    def __init__(self):
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)


def test_progress_logs_the_first_writes_then_every_ten_seconds_then_a_total():
    now = [100.0]
    log, tally = Lines(), RunTally(uri)
    progress = WriteProgress(log, uri, started=100.0, clock=lambda: now[0])
    folders = [write(f"2026-01-{d:02d}", "staging", d) for d in range(1, 10)]
    for i, folder in enumerate(folders):
        now[0] = {6: 110.99, 7: 111.0, 8: 111.0}.get(i, 101.0)  # 9.99 s, then 10 s after the sixth
        tally.add(folder, 50)
        progress.wrote(folder, 50, tally)
    progress.summary(tally, "s3://lake/staging/t/", 12.04)

    assert DETAILED_WRITES == 6
    assert log.lines == [
        f"wrote s3://lake/staging/t/dt=2026-01-0{d}/: {d} rows, 50 bytes" for d in range(1, 7)
    ] + [
        # the seventh comes 9.99 s after the sixth: unsaid; the eighth 10 s after: said
        "wrote s3://lake/staging/t/dt=2026-01-08/: 8 rows, 50 bytes (8 folders written so far)",
        "wrote 9 folders under s3://lake/staging/t/: 45 rows, 450 bytes in 12.0 s",
    ]


def test_a_kept_folder_is_said_so_and_counted_in_the_total():
    log, tally = Lines(), RunTally(uri)
    progress = WriteProgress(log, uri, started=0.0, clock=lambda: 0.0)
    for folder, size in [(write("2026-01-01", "raw", 3, unchanged=True), 0)] + [
        (write(f"2026-01-0{d}", "raw", 1), 20) for d in range(2, 8)
    ]:
        tally.add(folder, size)
        progress.wrote(folder, size, tally)
    progress.summary(tally, "s3://lake/raw/t/", 1.0)
    assert log.lines[0] == "kept s3://lake/raw/t/dt=2026-01-01/ as it is: 3 rows, nothing new"
    assert (
        log.lines[-1]
        == "wrote 6 folders under s3://lake/raw/t/, kept 1 as they were: 6 rows, 120 bytes in 1.0 s"
    )
    assert len(log.lines) == 7  # six detailed, the seventh inside ten seconds unsaid, the total


def test_the_uploader_writes_every_folder_and_hands_them_back_in_order(volt_env):
    """Real folders on the suite's S3: two writes to one day, a kept day between, more writes
    than writers; each comes back in the asset's order with the bytes it put."""
    store = LakeStore(volt_env.s3, volt_env.bucket)
    days = [dt.date(2026, 1, d) for d in range(1, 8)]
    folders = [
        FolderWrite(
            day=d,
            prefix=f"staging/t/dt={d}/",
            files={"part-00000.parquet": b"x" * d.day},
            manifest={"n": d.day},
        )
        for d in days
    ]
    folders.insert(
        2,
        FolderWrite(
            day=days[1],
            prefix=f"staging/t/dt={days[1]}/",
            files={"part-00000.parquet": b"second"},
            manifest={"n": 22},
        ),
    )
    folders.insert(
        4,
        FolderWrite(
            day=days[2], prefix=f"staging/t/dt={days[2]}/", files={}, manifest={}, unchanged=True
        ),
    )

    with FolderUploader(store, RunFolders(store, days)) as uploader:
        done = list(uploader.write_all(iter(folders)))

    assert [w for w, _ in done] == folders
    assert [size for w, size in done if w.unchanged] == [0]
    # every PUT made one object version: the sizes handed back add up to them, byte for byte
    listed = volt_env.s3.list_object_versions(Bucket=volt_env.bucket, Prefix="staging/t/")[
        "Versions"
    ]
    assert len(listed) == 2 * 8
    assert sum(size for _, size in done) == sum(v["Size"] for v in listed)
    body = volt_env.s3.get_object(
        Bucket=volt_env.bucket, Key="staging/t/dt=2026-01-02/part-00000.parquet"
    )["Body"]
    assert body.read() == b"second"  # the day's second write landed after its first
    assert json.loads(store.get_bytes("staging/t/dt=2026-01-02/_manifest.json"))["n"] == 22
