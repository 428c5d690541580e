"""The code location's executor: Dagster's own in-process / multiprocess choice, in-process
unless a run asks otherwise.

Dagster's default runs every step in a process of its own, and each such process imports
Dagster, pyarrow and DuckDB and loads the code location again: about 3 s and 250 MB a step
(bench/RESULTS.md). A lake run is a chain (staging reads what raw wrote), so processes buy
little parallelism and cost most of a small run. Runs that want steps in parallel (a wide
selection on a machine with cores to spare) ask for it in their run config:

    execution:
      config:
        multiprocess:
          max_concurrent: 4

Steps of the lake and the marts take slots of Dagster's concurrency pools. Dagster's SQL
storage decides whether a new waiting step gets a free slot, and a step freeing its slot
hands it to a waiting one, in separate statements: a step that starts waiting just as the
other run frees the last slot is never handed it, and its run waits forever ("Step still
blocked by limit for pool ..."; seen with two `dagster asset materialize` started 1.5 s
apart). While a run executes, `PoolWatch` hands any such free slot to a waiting step.
"""

from __future__ import annotations

import threading

import dagster as dg

_BASE = dg.multi_or_in_process_executor
WATCH_SECONDS = 2.0


def hand_out_free_slots(storage) -> list[str]:
    """Assign a free slot of each pool to its oldest waiting step, where a slot is free and
    a step waits unassigned (what freeing the slot should have done); returns those pools."""
    handed = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        if info.pending_step_count and info.slot_count > info.assigned_step_count:
            storage.assign_pending_steps([pool])
            handed.append(pool)
    return handed


class PoolWatch:
    """While open, hands out free pool slots every WATCH_SECONDS (a thread of the run)."""

    def __init__(self, instance: dg.DagsterInstance, log=None):
        self.storage, self.log = instance.event_log_storage, log
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="volt-pool-watch", daemon=True)

    def _watch(self) -> None:
        while not self.stop.wait(WATCH_SECONDS):
            try:
                for pool in hand_out_free_slots(self.storage):
                    if self.log is not None:
                        self.log.info(f"pool {pool}: a free slot handed to a waiting step")
            except Exception as exc:  # the storage unreachable for a moment: try again later
                if self.log is not None:
                    self.log.debug(f"pool watch: {type(exc).__name__}")

    def __enter__(self) -> PoolWatch:
        if hasattr(self.storage, "assign_pending_steps"):  # SQL storages (SQLite, PostgreSQL)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


class WatchedExecutor(dg.Executor):
    """Dagster's executor, its run watched by `PoolWatch`."""

    def __init__(self, inner: dg.Executor):
        self.inner = inner

    @property
    def retries(self):
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        with PoolWatch(plan_context.instance, plan_context.log):
            yield from self.inner.execute(plan_context, execution_plan)


def _watched(init_context) -> dg.Executor:
    return WatchedExecutor(_BASE.executor_creation_fn(init_context))


volt_executor = dg.ExecutorDefinition(
    name="volt_in_process_or_multiprocess",
    config_schema=dg.Field(
        _BASE.config_field.config_type, default_value={"in_process": {}}, is_required=False
    ),
    requirements=_BASE.get_requirements,
    executor_creation_fn=_watched,
    description="In-process by default; `multiprocess` in the run config runs each step in its own process.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(executor=volt_executor)
