"""A limit: pyarrow writing the same rows to zstd Parquet in memory.

The rows are first loaded into Arrow (connectorx, not timed); only `pq.write_table` to an
in-memory buffer is timed, with the project's Parquet options (zstd level 3, statistics,
dictionary encoding for text columns only).

    python -m bench.peers.pyarrow_parquet [--start ISO --end ISO]
"""

from __future__ import annotations

import argparse
import io
import time

from bench.common import TABLE, emit, pg_url, window_where

# volt_assets.lib.staging.transform.parquet_options (not imported: that would load dagster into this process)
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}


def parquet_options(schema) -> dict:
    import pyarrow as pa

    text = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    return {**PARQUET_OPTIONS, "use_dictionary": text}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()

    import connectorx as cx
    import pyarrow.parquet as pq

    loaded = time.perf_counter()
    table = cx.read_sql(
        pg_url(), f"SELECT * FROM {TABLE}{window_where(args.start, args.end)}", return_type="arrow"
    )
    started = time.perf_counter()
    sink = io.BytesIO()
    pq.write_table(table, sink, **parquet_options(table.schema))
    seconds = time.perf_counter() - started
    emit(
        {
            "rows": table.num_rows,
            "bytes": len(sink.getvalue()),
            "write_seconds": round(seconds, 3),
            "load_seconds": round(started - loaded, 3),
            "arrow_bytes": table.nbytes,
        }
    )


if __name__ == "__main__":
    main()
