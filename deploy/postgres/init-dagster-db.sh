#!/bin/sh
# Docker entrypoint init script (first start of an empty data volume only): Dagster's run,
# event-log and schedule storage get a database of their own, next to the Volt source database.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${DAGSTER_POSTGRES_DB:-dagster}\" OWNER \"$POSTGRES_USER\""
