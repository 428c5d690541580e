"""The marts' view of the lake: each table's state at the end of a day, never its whole history.

A mart partition D describes the world as the lake knew it at the end of day D: for every key,
its latest valid version with `updated_at` before D+1. That is the table's state of D
(`state/{table}/dt=D/`, defs/lake/state.py): each key's row in the latest staging day <= D
that has it, a hard-deleted key flagged `_deleted` with its last values. A run reads the
state of each of its days (only the columns it needs, straight from Parquet into DuckDB), so
its cost follows the live state and its own days, not the lake's age.

Staging days that fail a blocking check never reach the marts, whether the marts run with
staging or alone (`quality.gate.blocking_failures`): a failed day inside the run's window
fails the run, naming the checks; one before it adds nothing to the state until it passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from volt_assets.defs.lake.state import state_files, table_states
from volt_assets.defs.policies import missing_partition
from volt_assets.defs.quality.gate import blocking_failures
from volt_assets.defs.resources import PostgresResource
from volt_assets.lib.config.table_config import TableConfig, table
from volt_assets.lib.state.merge import state_schema
from volt_assets.lib.state.table_state import StateFiles, TableState
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import partition_prefix

MEMORY_LIMIT = "256MB"


def require_days(store: LakeStore, config: TableConfig, days: list[dt.date]) -> None:
    """Each of the run's own days must be complete and pass its blocking checks: a mart is
    never built for a day a blocking check stopped (dg.Failure, not retried)."""
    name = config.name
    for day in days:
        manifest = store.read_manifest(partition_prefix("staging", name, day))
        failed = blocking_failures(store, config, day, manifest)
        if failed:
            raise dg.Failure(
                description=f"staging/{name} {day} failed its quality gate: blocking check(s) "
                f"{', '.join(failed)} in ERROR (see quality/{name}/dt={day}/report.json), so "
                f"the marts are not built for it. Fix the source (or tables.yaml) and "
                f"re-materialise raw + staging for {day}.",
                allow_retries=False,
            )
        if manifest is None:
            raise missing_partition(f"staging/{name}", day)


class DayStates:
    """The state files of some tables for some days, and DuckDB views over one day's."""

    def __init__(
        self, states: dict[str, TableState], files: dict[str, dict[dt.date, StateFiles | None]]
    ):
        self.states, self.files = states, files
        self.con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": 2})
        self.con.execute("SET TimeZone = 'UTC'")

    def view(self, view: str, name: str, day: dt.date, columns: list[str], kind="latest"):
        """`view` over the columns of `name`'s state (`kind`) at the end of `day`."""
        found = self.files[name][day]
        if found is None:  # no staging day up to `day`: the lake knew nothing of the table yet
            self.con.register(f"{view}_empty", state_schema(table(name)).empty_table())
            source = f"{view}_empty"
        else:
            source = "read_parquet('" + str(found[kind]).replace("'", "''") + "')"
        listed = ", ".join(f'"{c}"' for c in columns)
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {listed} FROM {source}")

    def metadata(self) -> dict:
        """Per table, the staging days a blocking check kept out of the states read (up to
        the run's last day)."""
        out = {}
        for name, by_day in self.files.items():
            last = by_day[max(by_day)]
            out[f"{name}_gated_days_left_out"] = dg.MetadataValue.json(
                self.states[name].days_left_out(last)
            )
        return out


@contextmanager
def day_states(
    store: LakeStore,
    source: PostgresResource,
    context: dg.AssetExecutionContext,
    names: list[str],
    days: list[dt.date],
    asked: list[dt.date] | None = None,
) -> Iterator[DayStates]:
    """The run's days checked (`require_days`), then each table's state of each day (of
    `asked`, when the run reads more days than its own)."""
    for name in names:
        require_days(store, table(name), days)
    with table_states(store, source, context.log, context.run_id, names) as states:
        files = {name: state_files(states[name], asked or days, days[0]) for name in names}
        found = DayStates(states, files)
        try:
            yield found
        finally:
            found.con.close()
