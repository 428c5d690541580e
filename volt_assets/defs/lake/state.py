"""The lake's state layer wired for the readers: the marts, the references check, hard deletes.

`state/{table}/dt=D/` (lib/state/) is kept per table: each key's latest version at the end of
staging day D, and for `electrical_components` its type 2 history (the `dim_components`
mart's). Readers build what is missing under the table's state lock (a PostgreSQL advisory
lock, like the writer locks) and may rebuild back to VOLT_STATE_REBUILD_DAYS (default 92)
before their first day; a state stale from an older day fails the run, naming the day and
the one backfill that rebuilds it.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from volt_assets.defs.quality.gate import blocking_failures
from volt_assets.defs.resources import PostgresResource
from volt_assets.lib.config.table_config import table
from volt_assets.lib.state.merge import Type2Spec
from volt_assets.lib.state.table_state import StateFiles, StateStale, TableState
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.writer_locks import WriterLocks, application_name

DEFAULT_REBUILD_DAYS = 92
# The history `marts/dim_components` shows: a version per change of these columns.
TYPE2 = {
    "electrical_components": Type2Spec(
        key_as="component_id",
        tracked=("name", "category", "manufacturer", "price", "currency"),
        type1=("sku",),
    )
}


def state_lock(name: str) -> str:
    return f"volt_assets/state/{name}"


def rebuild_from(first_day: dt.date) -> dt.date:
    """How far back a run whose first day is `first_day` may rebuild a stale state."""
    back = int(os.environ.get("VOLT_STATE_REBUILD_DAYS", DEFAULT_REBUILD_DAYS))
    return first_day - dt.timedelta(days=back)


@contextmanager
def table_states(
    store: LakeStore, source: PostgresResource, log, run_id: str | None, names: list[str]
) -> Iterator[dict[str, TableState]]:
    """The states of `names`, their files in one temporary folder while the block runs."""
    with tempfile.TemporaryDirectory(prefix="volt-state-") as tmp:

        def state(name: str) -> TableState:
            config = table(name)
            return TableState(
                store,
                config,
                gate=lambda day, manifest: blocking_failures(store, config, day, manifest),
                lock=lambda: WriterLocks(
                    lambda: source.new_connection(application_name(run_id)),
                    [state_lock(name)],
                    log,
                    f"state/{name}",
                ),
                workdir=Path(tmp),
                type2=TYPE2.get(name),
                log=log.info,
            )

        yield {name: state(name) for name in names}


def state_files(
    state: TableState, days: list[dt.date], first_day: dt.date | None = None
) -> dict[dt.date, StateFiles | None]:
    """`TableState.files`, a stale state beyond what the run may rebuild a dg.Failure."""
    try:
        return state.files(days, rebuild_from(first_day or days[0]))
    except StateStale as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def live_keys(state: TableState, before: dt.date):
    """The keys the lake holds alive or soft-deleted (not hard-deleted) at the end of the day
    before `before`, or None when the state cannot say (no staging day before it, or stale
    beyond what may be rebuilt): the caller then reads raw's own history."""
    day = before - dt.timedelta(days=1)
    try:
        files = state.files([day], rebuild_from(before))[day]
    except StateStale:
        return None
    if files is None:
        return None
    config = state.config
    rows = pq.read_table(files["latest"], columns=[config.primary_key, config.cursor])
    return rows.filter(rows[config.cursor].is_valid())[config.primary_key].combine_chunks()
