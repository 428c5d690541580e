"""Change data capture for `sync: cdc` tables: every committed change read from PostgreSQL's
logical replication (pgoutput) into raw, each once, with its commit instant (docs/cdc.md).

`source_check` says what the source lacks (and the SQL that fixes it), `pgoutput` decodes the
plugin's binary messages, `values` renders their text as raw's exact JSON, `capture` opens the
slot with its snapshot and drains it into the lake. Nothing here imports Dagster.
"""
