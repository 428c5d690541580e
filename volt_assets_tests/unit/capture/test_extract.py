"""Several days read in one pass of the source equal each day read on its own.

Raw reads up to a month of days in one snapshot and splits the stream by the cursor's day as
it arrives. On a source with the dirt and the edges real data has (rows older than the first
partition, instants on midnight either side, text with line breaks and quotes, a day without
rows), each day's lines, versions and flags must be exactly what reading that day alone gives.
"""

import dataclasses
import datetime as dt
import gzip
import json

from volt_assets.lib.capture import extract as ex
from volt_assets.lib.config.partitions import capture_window
from volt_assets.lib.config.table_config import load_tables
from volt_assets_tests.pipeline import component, insert

COMPONENTS = load_tables()["electrical_components"]
DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3), dt.date(2026, 1, 4)]


def lines(extract: ex.Extract) -> list[str]:
    out = []
    for path in extract.paths:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out += f.read().splitlines()
    return out


def test_days_read_together_equal_each_day_read_alone(volt_env, source, tmp_path):
    rows = [
        component(1, "2025-01-15 10:00"),  # a year before the lake: the first partition's
        component(2, "2025-12-31 23:59:59.999999", name='Fuse "10A"\nline two'),
        component(3, "2026-01-01 00:00"),
        component(4, "2026-01-01 23:59:59.999999", specs='{"ohms": 12345678901234567890.5}'),
        component(5, "2026-01-02 00:00", name="Relay\\"),
        component(6, "2026-01-02 13:30"),
        # 2026-01-03: no rows
        component(7, "2026-01-04 00:00:00.000001", price="-1.00"),
        component(8, "2026-01-05 00:00"),  # after the last day: in no day
    ]
    insert(source, "electrical_components", rows)
    actual = ex.source_columns(source, COMPONENTS.name)
    window = (capture_window(DAYS[0])[0], capture_window(DAYS[-1])[1])
    (tmp_path / "together").mkdir()
    together = ex.extract_days(
        source, COMPONENTS, DAYS, window, tmp_path / "together", "part-x", actual
    )

    assert list(together) == DAYS
    for day in DAYS:
        folder = tmp_path / f"alone-{day}"
        folder.mkdir()
        alone = ex.extract(source, COMPONENTS, capture_window(day), folder, "part-x", actual=actual)
        assert lines(together[day]) == lines(alone), day
        assert together[day].versions.equals(alone.versions), day
        assert (together[day].rows, together[day].long_numbers) == (alone.rows, alone.long_numbers)
    ids = {day: [json.loads(line)["id"] for line in lines(together[day])] for day in DAYS}
    assert ids == {DAYS[0]: [1, 2, 3, 4], DAYS[1]: [5, 6], DAYS[2]: [], DAYS[3]: [7]}
    assert together[DAYS[0]].long_numbers and not together[DAYS[1]].long_numbers


def test_only_a_cursor_whose_text_starts_with_its_day_is_read_in_one_pass():
    assert ex.splits_by_day(COMPONENTS)
    integer_cursor = dataclasses.replace(
        COMPONENTS, columns={**COMPONENTS.columns, "updated_at": "bigint"}
    )
    assert not ex.splits_by_day(integer_cursor)
