"""The seeds' way: `pandas.read_sql("SELECT * ...")`, then JSON Lines and Parquet written in
memory and sent with boto3 `put_object` (one object each, no streaming).

    python -m bench.peers.pandas_way --bucket B --prefix P [--start ISO --end ISO]
"""

from __future__ import annotations

import argparse
import io
import time

from bench.common import TABLE, emit, pg_url, s3, window_where


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()

    import pandas as pd
    import sqlalchemy as sa

    started = time.perf_counter()
    engine = sa.create_engine(pg_url("postgresql+psycopg2"))
    with engine.connect() as conn:
        frame = pd.read_sql(f"SELECT * FROM {TABLE}{window_where(args.start, args.end)}", conn)
    read = time.perf_counter()
    body_json = frame.to_json(
        orient="records", lines=True, date_format="iso", date_unit="us"
    ).encode()
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)  # pandas' defaults (pyarrow engine, snappy)
    body_parquet = sink.getvalue()
    encoded = time.perf_counter()
    client = s3()
    client.put_object(Bucket=args.bucket, Key=f"{args.prefix}/{TABLE}.jsonl", Body=body_json)
    client.put_object(Bucket=args.bucket, Key=f"{args.prefix}/{TABLE}.parquet", Body=body_parquet)
    done = time.perf_counter()
    emit(
        {
            "rows": len(frame),
            "bytes": len(body_json) + len(body_parquet),
            "json_bytes": len(body_json),
            "parquet_bytes": len(body_parquet),
            "read_seconds": round(read - started, 3),
            "encode_seconds": round(encoded - read, 3),
            "upload_seconds": round(done - encoded, 3),
        }
    )


if __name__ == "__main__":
    main()
