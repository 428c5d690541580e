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
"""

from __future__ import annotations

import dagster as dg

_BASE = dg.multi_or_in_process_executor

volt_executor = dg.ExecutorDefinition(
    name="volt_in_process_or_multiprocess",
    config_schema=dg.Field(
        _BASE.config_field.config_type, default_value={"in_process": {}}, is_required=False
    ),
    requirements=_BASE.get_requirements,
    executor_creation_fn=_BASE.executor_creation_fn,
    description="In-process by default; `multiprocess` in the run config runs each step in its own process.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(executor=volt_executor)
