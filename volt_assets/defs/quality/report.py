"""The quality report of a partition, readable without the Dagster UI.

`quality/{name}/dt=YYYY-MM-DD/report.json` in the lake bucket: per check, the verdict of that
day, the counts, up to 20 sample keys with their reasons and when it was checked. Raw, staging
and the standalone checks each run in their own step, so each one replaces only its own
checks' entries and keeps the others'. Each write is conditional on the version it merged into
(S3's If-Match / If-None-Match): steps of two runs writing one day's report at once both land,
whichever order they take. The refused rows themselves, with every reason, stay in
`quarantine/{table}/dt=D/`.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import Future, ThreadPoolExecutor

from volt_assets.defs.quality.outcome import DayOutcome
from volt_assets.lib.store.lake_store import LakeError, LakeStore, WriteConflict
from volt_assets.lib.store.layout import QUALITY_REPORT, layer_prefix, partition_prefix

REPORT = QUALITY_REPORT
LAYER = "quality"
WRITE_ATTEMPTS = 8


def report_key(name: str, day: dt.date) -> str:
    return partition_prefix(LAYER, name, day) + REPORT


def read_report(store: LakeStore, name: str, day: dt.date) -> dict | None:
    got = store.get_tagged(report_key(name, day))
    return json.loads(got[0]) if got else None


ABSENT = ""  # a listing of the run's days shows no report: write it where there is none


def _current(store: LakeStore, key: str, listed: str | None) -> tuple[str | None, dict | None]:
    """The report to merge into and its ETag (None, None: there is none). `listed`: its ETag
    in a listing of the run's days (ABSENT: not there), None when not listed."""
    if listed == ABSENT:
        return None, None
    # what this process wrote or read last: the conditional PUT still loses if another writer
    # replaced it since
    known = store.last_known(key)
    if known is not None and listed in (None, known[0]):
        return known[0], json.loads(known[1])
    return _fetched(store, key)


def _fetched(store: LakeStore, key: str) -> tuple[str | None, dict | None]:
    """The report's current ETag and content from S3 ((None, None): there is none)."""
    got = store.get_tagged(key)
    return (got[1], json.loads(got[0])) if got else (None, None)


def write_report(
    store: LakeStore,
    name: str,
    day: dt.date,
    layer: str,
    outcomes: dict[str, DayOutcome],
    extra: dict | None = None,
    blocking: frozenset[str] = frozenset(),
    listed: str | None = None,
) -> str:
    """Merge this step's checks of one day into the day's report; returns the S3 URI.
    `blocking` names the checks whose ERROR stops what is downstream; `listed` as `_current`.

    The PUT is conditional on the version merged into: when another run's step wrote the
    report in between, this one reads it again and merges into that (never losing the other
    layer's checks), up to WRITE_ATTEMPTS times."""
    key = report_key(name, day)
    etag, report = _current(store, key, listed)
    for _ in range(WRITE_ATTEMPTS):
        merged = _merged(report, name, day, layer, outcomes, extra, blocking)
        body = json.dumps(merged, indent=2, sort_keys=False, default=str).encode()
        try:
            store.put_if(key, body, "application/json", etag)
            return store.uri(key)
        except WriteConflict:
            etag, report = _fetched(store, key)
    raise LakeError(
        f"the quality report {store.uri(key)} changed under this run {WRITE_ATTEMPTS} times "
        "in a row: other runs are writing the same day's checks; retry once they are done"
    )


def _merged(
    report: dict | None,
    name: str,
    day: dt.date,
    layer: str,
    outcomes: dict[str, DayOutcome],
    extra: dict | None,
    blocking: frozenset[str],
) -> dict:
    """`report` (or a new one) with this step's checks in place of their earlier entries."""
    report = report or {"name": name, "dt": day.isoformat(), "checks": {}}
    checked_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for check_name, outcome in outcomes.items():
        report["checks"][check_name] = {
            "layer": layer,
            "checked_at": checked_at,
            "blocking": check_name in blocking,
            **outcome.as_dict(),
        }
    if extra:
        report.setdefault("context", {})[layer] = extra
    verdicts = [c["verdict"] for c in report["checks"].values()]
    report["verdict"] = "ERROR" if "ERROR" in verdicts else "WARN" if "WARN" in verdicts else "PASS"
    report["checks"] = dict(sorted(report["checks"].items()))
    return report


class ReportWriter:
    """Writes a run's day reports in the background (one PUT each, see `write_report`), a few at
    a time, while the step goes on; `uris()` waits for them all (and raises the first failure).

    `days`: the run's days, whose reports are listed once (one request per 1,000 days) rather
    than read one by one: a day without a report is written with no read at all."""

    def __init__(self, store: LakeStore, name: str, days: list[dt.date], workers: int = 4):
        self.store = store
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="volt-report")
        self.futures: list[Future] = []
        self.listed: dict[str, str] = {}
        if days:
            found = store.days_objects(layer_prefix(LAYER, name), min(days), max(days))
            self.listed = {o["Key"]: o["ETag"] for o in found if o["Key"].endswith(REPORT)}

    def submit(
        self,
        name: str,
        day: dt.date,
        layer: str,
        outcomes: dict[str, DayOutcome],
        extra: dict | None = None,
        blocking: frozenset[str] = frozenset(),
    ) -> None:
        listed = self.listed.get(report_key(name, day), ABSENT)
        self.futures.append(
            self.pool.submit(
                write_report, self.store, name, day, layer, outcomes, extra, blocking, listed
            )
        )

    def uris(self) -> list[str]:
        try:
            return [f.result() for f in self.futures]
        finally:
            self.pool.shutdown(wait=True)


def blocking_errors(store: LakeStore, name: str, day: dt.date) -> list[str]:
    """The blocking checks that ended in ERROR for a day, by its report ([] without a report).
    What a reader outside a run (a mart built later) can ask before trusting staging D."""
    report = read_report(store, name, day) or {}
    return sorted(
        n
        for n, c in report.get("checks", {}).items()
        if c.get("blocking") and c.get("verdict") == "ERROR"
    )
