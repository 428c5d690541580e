"""A step that starts waiting for a pool slot just as another run frees the last one.

Dagster's SQL storage checks for a free slot and registers the waiting step in separate
statements, and a step freeing its slot hands it only to steps already waiting: in between,
the slot is freed to nobody and the new step waits forever. The project's executor watches
its runs for that (defs/executor.py). These tests build the state on a real SQLite instance.
"""

from __future__ import annotations

import time
from unittest import mock

import dagster as dg

from volt_assets.defs import executor
from volt_assets.defs.executor import PoolWatch, hand_out_free_slots

POOL = "volt_lake_electrical_components"


def stranded(storage) -> None:
    """Run B's step found no free slot, run A then freed it, and only then B registered."""
    storage.set_concurrency_slots(POOL, 1)
    assert storage.claim_concurrency_slot(POOL, "run-a", "raw").is_claimed
    storage.free_concurrency_slots_for_run("run-a")
    storage.add_pending_step(POOL, "run-b", "raw", should_assign=False)


def test_dagster_alone_leaves_the_step_waiting_and_a_free_slot_ends_the_wait(tmp_path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        stranded(storage)
        for _ in range(3):  # the premise: Dagster's own retries never get it the slot
            assert not storage.claim_concurrency_slot(POOL, "run-b", "raw").is_claimed
        info = storage.get_concurrency_info(POOL)
        assert (info.slot_count, info.active_slot_count, info.pending_step_count) == (1, 0, 1)

        assert hand_out_free_slots(storage) == [POOL]
        assert storage.claim_concurrency_slot(POOL, "run-b", "raw").is_claimed
        assert hand_out_free_slots(storage) == []  # nothing is left waiting


def test_a_step_waiting_for_a_slot_another_run_holds_keeps_waiting(tmp_path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(POOL, 1)
        assert storage.claim_concurrency_slot(POOL, "run-a", "raw").is_claimed
        assert not storage.claim_concurrency_slot(POOL, "run-b", "raw").is_claimed

        assert hand_out_free_slots(storage) == []
        assert not storage.claim_concurrency_slot(POOL, "run-b", "raw").is_claimed
        storage.free_concurrency_slots_for_run("run-a")  # Dagster's own hand-over still works
        assert storage.claim_concurrency_slot(POOL, "run-b", "raw").is_claimed


def test_a_watched_run_hands_the_stranded_slot_over_within_seconds(tmp_path):
    with (
        dg.DagsterInstance.local_temp(str(tmp_path)) as instance,
        mock.patch.object(executor, "WATCH_SECONDS", 0.05),
    ):
        storage = instance.event_log_storage
        stranded(storage)
        with PoolWatch(instance):
            deadline = time.monotonic() + 10
            while not storage.claim_concurrency_slot(POOL, "run-b", "raw").is_claimed:
                assert time.monotonic() < deadline, "the stranded step never got the free slot"
                time.sleep(0.05)
