"""`references` rules: a staging row's foreign key names a key the lake knows.

Known = any primary key in the state of the referenced table at the end of D
(`state/{table}/dt=D/`: every key of a staging day up to D that passed its blocking checks,
hard-deleted ones included: an order may name a component deleted since). These checks read other tables, so they are
standalone checks on the referencing staging asset that depend on the referenced staging
assets too: in a run that builds all of them, they run after the last one. Each day reads the
key column of one state file, whatever the lake's age.

A null foreign key is not judged here (that would be a `not_null` rule).
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.defs.lake.io_manager import LakePartitions
from volt_assets.defs.lake.state import state_files, table_states
from volt_assets.defs.quality.outcome import MAX_SAMPLES, DayOutcome, Sample, Tally
from volt_assets.defs.quality.report import write_report
from volt_assets.defs.quality.rulebook import judge, rule_spec
from volt_assets.defs.resources import LakeResource, PostgresResource
from volt_assets.lib.config.partitions import UTC, days_between
from volt_assets.lib.config.table_config import Rule, TableConfig
from volt_assets.lib.state.table_state import TableState
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import layer_prefix


class KnownKeys:
    """The keys of one staging table the lake knows at the end of each of the run's days."""

    def __init__(self, state: TableState, days: list[dt.date]):
        self.files = state_files(state, days)
        self.pk = state.config.primary_key
        self.empty = pa.array([], state.config.staging_schema().field(self.pk).type)

    def up_to(self, day: dt.date) -> pa.Array:
        found = self.files[day]
        if found is None:  # no staging day up to `day`: no key is known yet
            return self.empty
        return pq.read_table(found["latest"], columns=[self.pk])[self.pk].combine_chunks()


def reference_rules(config: TableConfig) -> list[Rule]:
    return [r for r in config.checks if r.rule == "references"]


def run_days(context: dg.AssetCheckExecutionContext, store: LakeStore, name: str) -> list[dt.date]:
    """The run's days; a check launched on its own (no partition) looks at the latest day."""
    op = context.op_execution_context
    if op.has_partition_key or op.has_partition_key_range:
        window = op.partition_time_window
        return days_between(window.start.astimezone(UTC), window.end.astimezone(UTC))
    return store.list_days(layer_prefix("staging", name))[-1:]


def check_day(config: TableConfig, rule: Rule, rows: pa.Table, known: pa.Array) -> DayOutcome:
    """The rows of a day whose `rule.column` is set but not among the known keys."""
    values = rows[rule.column]
    broken = pc.and_(
        pc.is_valid(values), pc.invert(pc.is_in(values, value_set=known.cast(values.type)))
    )
    failing = pc.sum(broken).as_py() or 0
    first = pc.indices_nonzero(broken).slice(0, MAX_SAMPLES)
    samples = [
        Sample(str(k), f"{rule.column}: {v} is not a known {rule.table} key")
        for k, v in zip(
            rows[config.primary_key].take(first).to_pylist(), values.take(first).to_pylist()
        )
    ]
    return DayOutcome(failing, rows.num_rows, judge(config, rule, failing, rows.num_rows), samples)


def build_reference_checks(config: TableConfig) -> dg.AssetChecksDefinition | None:
    """One standalone multi-check per table with `references` rules (None without any)."""
    rules = reference_rules(config)
    if not rules:
        return None
    key = dg.AssetKey(["staging", config.name])
    referenced = sorted({r.table for r in rules})
    specs = [
        rule_spec(config, key, r, refuse=False, additional_deps=[dg.AssetKey(["staging", r.table])])
        for r in rules
    ]

    blocking = frozenset(s.name for s in specs if s.blocking)

    @dg.multi_asset_check(
        specs=specs,
        name=f"{config.name}_references",
        can_subset=True,
        description=f"Foreign keys of staging/{config.name} name keys known in staging/{', '.join(referenced)}.",
    )
    def references_check(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, source: PostgresResource
    ) -> Iterator[dg.AssetCheckResult]:
        store = lake.store()
        selected = {k.name for k in context.selected_asset_check_keys}
        chosen = [r for r in rules if r.name in selected]
        reader = LakePartitions(store, "staging", config.name, [])
        days = run_days(context, store, config.name)
        referenced = sorted({r.table for r in chosen})
        with table_states(store, source, context.log, context.run.run_id, referenced) as states:
            known = {t: KnownKeys(states[t], days) for t in referenced}
            yield from judge_days(config, key, chosen, reader, known, days, blocking)

    return references_check


def judge_days(
    config: TableConfig,
    key: dg.AssetKey,
    chosen: list[Rule],
    reader: LakePartitions,
    known: dict[str, KnownKeys],
    days: list[dt.date],
    blocking: frozenset[str],
) -> Iterator[dg.AssetCheckResult]:
    """The check results of the run's days: each day's rows against the keys known then, each
    day's verdicts written to its quality report."""
    tallies = {r.name: Tally(r.name, key) for r in chosen}
    columns = [config.primary_key, config.cursor] + [r.column for r in chosen]
    for day in days:
        rows = reader.read_parquet(day, columns=columns)
        if rows is None:
            continue  # staging never wrote the day: staging's own run says why
        rows = rows.filter(pc.is_valid(rows[config.cursor]))  # tombstones carry no foreign keys
        outcomes = {r.name: check_day(config, r, rows, known[r.table].up_to(day)) for r in chosen}
        write_report(reader.store, config.name, day, "staging", outcomes, blocking=blocking)
        for name, outcome in outcomes.items():
            tallies[name].add(day, outcome)
    for tally in tallies.values():
        yield tally.result(
            "every foreign key names a known key",
            "{failing} of {rows} rows ({share}) name unknown keys, on {days}",
        )
