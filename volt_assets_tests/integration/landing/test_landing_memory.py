"""The landing-file check of a file at the size cap (64 MiB) in bounded memory: run alone in a
fresh process, as the landing job runs it, reading its own peak resident set size."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from volt_assets.defs.landing.csv_files import MAX_BYTES
from volt_assets.lib.config.table_config import table

PEAK_MB = 300
CHECK = """
import datetime as dt, json, sys
from volt_assets.defs.landing import csv_files as landing
from volt_assets.lib.config.table_config import table
def peak_mb():  # VmHWM: this process's own peak (ru_maxrss carries the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
before = peak_mb()
with open(sys.argv[1], "rb") as body:
    judged = landing.judge(
        table("electrical_components"), body, "landing/electrical_components/big.csv",
        dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )
print(json.dumps({
    "before_mb": before,
    "peak_mb": peak_mb(),
    "counts": judged.counts, "file_reasons": judged.file_reasons,
    "first_ids": judged.staging["id"].slice(0, 3).to_pylist(),
}))
"""


def big_csv(path, size: int) -> int:
    """A components file just under `size` bytes, every 100th row with a negative price;
    returns its number of rows."""
    columns = list(table("electrical_components").columns)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    n = 0
    while out.tell() < size - 400:
        n += 1
        row = {
            "id": n,
            "sku": f"SKU-{n}",
            "name": f"Fuse {n} slow-blow ceramic",
            "category": "Fuses",
            "manufacturer": "ABB",
            "price": "-1" if n % 100 == 0 else "12.50",
            "currency": "EUR",
            "stock_quantity": 5,
            "voltage_rating": 230,
            "specs": '{"amps": 16}',
            "image_filename": f"c{n}.png",
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-02 10:00:00+00",
        }
        writer.writerow([row.get(c, "") for c in columns])
    path.write_bytes(out.getvalue().encode())
    return n


def test_a_file_at_the_cap_is_checked_within_300_mb(tmp_path):
    path = tmp_path / "big.csv"
    rows = big_csv(path, MAX_BYTES)
    assert MAX_BYTES - 1000 < path.stat().st_size <= MAX_BYTES
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the check did its whole work: every row judged, the bad ones refused
    assert result["file_reasons"] == []
    assert result["counts"] == {
        "rows": rows,
        "staged_rows": rows - rows // 100,
        "quarantined_rows": rows // 100,
        "superseded_rows": 0,
    }
    assert result["first_ids"] == [1, 2, 3]
    assert result["before_mb"] < 150  # the process before the check: the imports alone
    assert result["peak_mb"] <= PEAK_MB, result
