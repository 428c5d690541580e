"""The quality report of a partition, readable without the Dagster UI.

`quality/{name}/dt=YYYY-MM-DD/report.json` in the lake bucket: per check, the verdict of that
day, the counts, up to 20 sample keys with their reasons and when it was checked. Raw, staging
and the standalone checks each run in their own step, so each one replaces only its own
checks' entries and keeps the others' (the steps of one table and day run one after another:
raw, then staging, then the checks that depend on staging). The refused rows themselves, with
every reason, stay in `quarantine/{table}/dt=D/`.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import Future, ThreadPoolExecutor

from botocore.exceptions import ClientError

from volt_assets.defs.quality.outcome import DayOutcome
from volt_assets.lib.layout import partition_prefix
from volt_assets.lib.store import LakeStore

REPORT = "report.json"
LAYER = "quality"


def report_key(name: str, day: dt.date) -> str:
    return partition_prefix(LAYER, name, day) + REPORT


def read_report(store: LakeStore, name: str, day: dt.date) -> dict | None:
    try:
        return json.loads(store.get_bytes(report_key(name, day)))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def write_report(
    store: LakeStore,
    name: str,
    day: dt.date,
    layer: str,
    outcomes: dict[str, DayOutcome],
    extra: dict | None = None,
    blocking: frozenset[str] = frozenset(),
) -> str:
    """Merge this step's checks of one day into the day's report; returns the S3 URI.
    `blocking` names the checks whose ERROR stops what is downstream."""
    report = read_report(store, name, day) or {"name": name, "dt": day.isoformat(), "checks": {}}
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
    body = json.dumps(report, indent=2, sort_keys=False, default=str).encode()
    key = report_key(name, day)
    store.put(key, body, "application/json")
    return store.uri(key)


class ReportWriter:
    """Writes a run's day reports in the background (a GET and a PUT each), a few at a time,
    while the step goes on; `uris()` waits for them all (and raises the first failure)."""

    def __init__(self, store: LakeStore, workers: int = 4):
        self.store = store
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="volt-report")
        self.futures: list[Future] = []

    def submit(
        self,
        name: str,
        day: dt.date,
        layer: str,
        outcomes: dict[str, DayOutcome],
        extra: dict | None = None,
        blocking: frozenset[str] = frozenset(),
    ) -> None:
        self.futures.append(
            self.pool.submit(write_report, self.store, name, day, layer, outcomes, extra, blocking)
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
