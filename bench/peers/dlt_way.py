"""dlt 1.x: `sql_table` (backend pyarrow or connectorx) into the filesystem destination on
the same S3 endpoint, as Parquet.

    python -m bench.peers.dlt_way --backend pyarrow|connectorx --bucket B --prefix P [--start ISO --end ISO]

dlt keeps its pipeline state and working files under bench/out/dlt (DLT_DATA_DIR).
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import OUT, TABLE, emit, pg_url, prefix_bytes, s3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("pyarrow", "connectorx"), required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()

    os.environ.setdefault("DLT_DATA_DIR", str(OUT / "dlt"))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    import sqlalchemy as sa
    from dlt.destinations import filesystem
    from dlt.sources.sql_database import sql_table

    def window(query, table):
        if not args.start:
            return query
        # literal SQL text: the connectorx backend compiles the query with literal binds
        return query.where(
            sa.text(
                f"updated_at >= '{args.start}'::timestamptz AND updated_at < '{args.end}'::timestamptz"
            )
        )

    started = time.perf_counter()
    resource = sql_table(
        credentials=pg_url("postgresql+psycopg2"),
        table=TABLE,
        backend=args.backend,
        query_adapter_callback=window,
    )
    destination = filesystem(
        bucket_url=f"s3://{args.bucket}/{args.prefix}",
        credentials={
            "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "endpoint_url": os.environ["AWS_ENDPOINT_URL"],
            "region_name": os.environ.get("AWS_DEFAULT_REGION", "eu-central-1"),
        },
    )
    name = f"bench_{args.backend}_{args.prefix.replace('/', '_')}"
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name="volt",
        pipelines_dir=str(OUT / "dlt" / "pipelines"),
    )
    info = pipeline.run(resource, loader_file_format="parquet", write_disposition="replace")
    info.raise_on_failed_jobs()
    seconds = time.perf_counter() - started
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(TABLE, 0)
    objects, size = prefix_bytes(s3(), args.bucket, f"{args.prefix}/volt/{TABLE}/")
    emit({"rows": rows, "bytes": size, "objects": objects, "seconds_inside": round(seconds, 3)})


if __name__ == "__main__":
    main()
