"""Crash safety: a materialisation SIGKILLed at a chosen point leaves every partition either as
it was (old) or as an undisturbed run writes it (new), never a half; re-running then gives
exactly the undisturbed run's lake and marts.

The story of every test: the shop was materialised once (the *old* state); the source then
changed (`dataset.change`: updates, inserts, a hard delete, a row gone bad) and the whole
pipeline runs again over the same two days. An undisturbed copy of that second run is the
*new* state. The disturbed run is killed (SIGKILL of its process group, as on an OOM kill or
a lost node) at:

| point                      | how it is chosen                                                    |
| -------------------------- | ------------------------------------------------------------------- |
| during the raw write       | the S3 proxy holds the PUT of raw D2's `_manifest.json`: the parts  |
|                            | and `_versions.parquet` are uploaded, the manifest is not           |
| between raw and staging    | the S3 proxy holds staging's first PUT                              |
| during the staging write   | the S3 proxy holds the PUT of staging D2's `_manifest.json`: the    |
|                            | new `part-00000.parquet` is uploaded over the old one, the manifest |
|                            | is not; readers get the version the old manifest lists              |
| during the marts load      | a test session row-locks a mart row, so the load's DELETE waits     |
|                            | inside its transaction; the run dies there                          |
| during the mart copies     | the S3 proxy holds the PUT of a mart's Parquet copy of D2 (the      |
|                            | PostgreSQL load has committed)                                      |

Then a reader following `_manifest.json` must find nothing broken (`lake.problems`), every
folder and every mart table must equal its old or its new state, and a plain re-run must give
the new state exactly (`lake.compare`, mart rows included).

The old state is built once per module and copied into each test's database and bucket
(`env.clone_twin`), which is much faster than materialising it again.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import closing
from dataclasses import dataclass

import pytest

from volt_assets.devstack import stack
from volt_assets_tests.faults import dataset, lake
from volt_assets_tests.faults.env import (
    Twin,
    clone_twin,
    drop_twin,
    make_twin,
    using_env,
    without_env,
)
from volt_assets_tests.faults.runs import ForkedRun, wait_until
from volt_assets_tests.faults.s3 import S3FaultProxy
from volt_assets_tests.pipeline import SUITE_TODAY, materialize

DAYS = [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
RANGE = (DAYS[0].isoformat(), DAYS[-1].isoformat())
D2 = DAYS[-1].isoformat()


def pipeline_keys() -> list[str]:
    from volt_assets.definitions import build_definitions

    keys = [k.to_user_string() for k in build_definitions().resolve_all_asset_keys()]
    return sorted(k for k in keys if k.split("/")[0] in ("raw", "staging", "marts"))


def run_undisturbed(target: Twin, keys: list[str]) -> None:
    with using_env(target.env):
        assert materialize(keys, RANGE).success


@dataclass
class States:
    keys: list[str]
    template: Twin  # the old state, copied into each test's target
    old: lake.Snapshot
    new: lake.Snapshot
    pg_server: object
    s3_endpoint: str
    home: object


@pytest.fixture(scope="module")
def states(pg_server, s3_endpoint, tmp_path_factory):
    home = tmp_path_factory.mktemp("kills")
    base = {
        "AWS_ACCESS_KEY_ID": stack.S3_DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": stack.S3_DUMMY_KEY,
        "AWS_DEFAULT_REGION": stack.S3_REGION,
        "VOLT_PARTITIONS_START": "2026-01-01",
        "VOLT_TODAY": SUITE_TODAY,  # every run notices hard deletes (conftest)
        "VOLT_USE_STACK": "0",
        "VOLT_IMAGES_DIR": str(home),
    }
    with without_env():
        yield from _states(pg_server, s3_endpoint, home, base)


def _states(pg_server, s3_endpoint, home, base):
    template = make_twin(pg_server, s3_endpoint, base, home / "template")
    with using_env(template.env):
        keys = pipeline_keys()
    conn = template.connect()
    dataset.seed(conn, DAYS)
    conn.close()
    run_undisturbed(template, keys)
    old = lake.snapshot(template)

    undisturbed = clone_twin(pg_server, s3_endpoint, template, home / "undisturbed")
    conn = undisturbed.connect()
    dataset.change(conn, DAYS[-1])
    conn.close()
    run_undisturbed(undisturbed, keys)
    new = lake.snapshot(undisturbed)
    drop_twin(pg_server, undisturbed)
    try:
        yield States(keys, template, old, new, pg_server, s3_endpoint, home)
    finally:
        drop_twin(pg_server, template)


@pytest.fixture
def target(states, request):
    """A copy of the old state, with the source already changed (the second run is due)."""
    t = clone_twin(
        states.pg_server, states.s3_endpoint, states.template, states.home / request.node.name
    )
    conn = t.connect()
    dataset.change(conn, DAYS[-1])
    conn.close()
    yield t
    drop_twin(states.pg_server, t)


def assert_old_or_new(states: States, target: Twin) -> lake.Snapshot:
    """What a reader sees now: nothing broken, every folder and mart table old or new."""
    assert lake.problems(target) == []
    now = lake.snapshot(target)
    folders = set(states.old.manifests) | set(states.new.manifests) | set(now.manifests)
    halves = [
        f
        for f in sorted(folders)
        if now.folder_state(f) not in (states.old.folder_state(f), states.new.folder_state(f))
    ]
    assert halves == [], f"folders neither old nor new: {halves}"
    for table in sorted(set(states.old.marts) | set(states.new.marts) | set(now.marts)):
        assert now.marts.get(table) in (states.old.marts.get(table), states.new.marts.get(table)), (
            table
        )
    return now


def changed_folders(states: States, now: lake.Snapshot) -> tuple[list[str], list[str]]:
    """(folders now in their new state, folders still old) among those the second run changes."""
    differing = [
        f
        for f in set(states.old.manifests) | set(states.new.manifests)
        if states.old.folder_state(f) != states.new.folder_state(f)
    ]
    new = sorted(f for f in differing if now.folder_state(f) == states.new.folder_state(f))
    old = sorted(f for f in differing if now.folder_state(f) == states.old.folder_state(f))
    return new, old


def rerun_gives_the_undisturbed_result(states: States, target: Twin) -> None:
    run_undisturbed(target, states.keys)
    assert lake.compare(states.new, lake.snapshot(target)) == []
    assert lake.problems(target) == []
    # Replaced folders drop what a killed run left; raw only grows, so a killed capture's
    # unlisted part stays (invisible to readers, who follow the manifest).
    assert [k for k in lake.orphans(target) if not k.startswith("raw/")] == []


def kill_when_held(states: States, target: Twin, method: str, path_regex: str) -> None:
    """Run the pipeline through a proxy that holds the first matching request; SIGKILL the run
    while it waits for the answer; the held request never reaches S3."""
    with S3FaultProxy(states.s3_endpoint) as proxy:
        hold = proxy.hold(method, path_regex)
        run = ForkedRun({**target.env, "AWS_ENDPOINT_URL": proxy.url}, states.keys, RANGE).start()
        try:
            assert hold.wait(120), f"the run never sent {method} {path_regex}"
        finally:
            run.kill()
            hold.release()
        wait_until(
            lambda: hold.forwarded is not None, 10, what="the proxy to drop the held request"
        )
        assert hold.forwarded is False


# --- the kill points ----------------------------------------------------------------------------


def test_kill_during_the_raw_write(states, target):
    kill_when_held(states, target, "PUT", rf"/raw/electrical_components/dt={D2}/_manifest\.json$")
    now = assert_old_or_new(states, target)
    new, old = changed_folders(states, now)
    assert f"raw/electrical_components/dt={D2}/" in old  # the kill came before its manifest
    rerun_gives_the_undisturbed_result(states, target)


def test_kill_between_raw_and_staging(states, target):
    kill_when_held(states, target, "PUT", r"/staging/[a-z_]+/dt=[0-9-]+/part-00000\.parquet$")
    now = assert_old_or_new(states, target)
    new, old = changed_folders(states, now)
    assert f"raw/electrical_components/dt={D2}/" in new
    assert not any(f.startswith("staging/") for f in new)
    rerun_gives_the_undisturbed_result(states, target)


def test_kill_during_the_staging_write(states, target):
    """The fixed-name part is overwritten before the manifest: the old manifest records the old
    part's S3 version id, so a reader following it still gets the old part whole."""
    kill_when_held(
        states, target, "PUT", rf"/staging/electrical_components/dt={D2}/_manifest\.json$"
    )
    # the premise: the new part is already the current object, over the version the (old)
    # manifest lists, and its bytes differ from that version's
    prefix = f"staging/electrical_components/dt={D2}/"
    listed = json.loads(target.read_object(prefix + "_manifest.json"))["files"][
        "part-00000.parquet"
    ]["version_id"]
    current = target.s3.head_object(Bucket=target.bucket, Key=prefix + "part-00000.parquet")[
        "VersionId"
    ]
    assert current != listed
    assert target.read_object(prefix + "part-00000.parquet") != target.read_object(
        prefix + "part-00000.parquet", listed
    )
    now = assert_old_or_new(states, target)
    new, old = changed_folders(states, now)
    assert f"staging/electrical_components/dt={D2}/" in old
    rerun_gives_the_undisturbed_result(states, target)


def test_kill_during_the_marts_load(states, target):
    """The load's DELETE waits for a row lock inside its transaction: killed there, PostgreSQL
    rolls the transaction back and readers keep the old rows, also after the lock is gone."""
    mart = "dim_components"  # one the source change alters (daily_category_sales stays the same)
    locker = target.connect()
    try:
        with locker.cursor() as cur:
            cur.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM marts.{mart} WHERE component_id = 7 FOR UPDATE) x"
            )
            assert cur.fetchone()[0] > 0

        def load_waiting():
            with closing(target.connect()) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'volt_assets' AND wait_event_type = 'Lock' AND query ILIKE %s",
                    (f'DELETE FROM "marts"."{mart}"%',),
                )
                return cur.fetchone()[0]

        run = ForkedRun(target.env, states.keys, RANGE).start()
        try:
            wait_until(
                load_waiting,
                120,
                interval=0.1,
                what=f"the load of marts.{mart} to wait inside its transaction",
            )
        finally:
            run.kill()
        now = assert_old_or_new(states, target)
        assert now.marts[mart] == states.old.marts[mart] != states.new.marts[mart]
        new, _ = changed_folders(states, now)
        assert f"staging/electrical_components/dt={D2}/" in new  # killed after staging, in the load
    finally:
        locker.rollback()
        locker.close()

    def load_gone():
        with closing(target.connect()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'volt_assets'"
            )
            return cur.fetchone()[0] == 0

    wait_until(load_gone, 30, interval=0.1, what="the killed run's session to end")
    now = assert_old_or_new(states, target)
    assert now.marts[mart] == states.old.marts[mart]
    rerun_gives_the_undisturbed_result(states, target)


def test_kill_during_the_mart_copies(states, target):
    mart = "dim_components"
    kill_when_held(states, target, "PUT", rf"/mart/{mart}/dt={D2}/part-00000\.parquet$")
    now = assert_old_or_new(states, target)
    assert (
        now.marts[mart] == states.new.marts[mart] != states.old.marts[mart]
    )  # committed before the copies
    new, old = changed_folders(states, now)
    assert f"mart/{mart}/dt={D2}/" in old
    rerun_gives_the_undisturbed_result(states, target)
