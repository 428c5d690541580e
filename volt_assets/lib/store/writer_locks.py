"""Writer locks: two runs never write the same partition folder or mart at the same time.

A run takes a PostgreSQL advisory lock (session level, in the marts database, the one database
the pipeline always writes) per folder it writes — `volt_assets/raw/orders/2026-01-02` — and
per mart, and holds them until its output is published. Dagster's concurrency pools usually
keep two such steps apart already; the locks make the writers safe without them (a second
`dagster asset materialize`, an instance without pool limits).

A lock another run holds is waited for: the run logs which lock and who holds it (the other
connection's application name carries its Dagster run id), tries again every
`POLL_SECONDS`, and after VOLT_LOCK_TIMEOUT_SECONDS (default 3600) gives up with a dg.Failure
naming the lock and the holder. Locks are always taken in sorted order, so two runs never wait
for each other in a circle. A run that dies loses its connection, and PostgreSQL frees its locks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import dagster as dg

POLL_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 3600.0

# The holder of an advisory lock on a bigint key: pg_locks splits the key into classid (high
# 32 bits) and objid (low 32 bits), objsubid 1.
HOLDER_SQL = """
SELECT a.pid, a.application_name, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = ((k.key >> 32) & 4294967295)
  AND l.objid::bigint = (k.key & 4294967295)
"""


def lock_timeout() -> float:
    return float(os.environ.get("VOLT_LOCK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


def folder_lock(layer: str, table: str, day) -> str:
    """The lock name of one partition folder (`day` a date, or a word such as `deletes`)."""
    return f"volt_assets/{layer}/{table}/{day}"


def application_name(run_id: str | None) -> str:
    """What the lock connection calls itself: other runs name it when they wait."""
    return f"volt_assets run {run_id}" if run_id else "volt_assets"


# The locks this process holds, by name. Steps of one process run one after the other, so a
# name asked for again is held by an earlier attempt that Dagster never closed (a step that
# failed while its generator was suspended inside the `with`, then retried in the same run
# process): that holder is released instead of being waited for until the timeout.
_HELD: dict[str, WriterLocks] = {}


class WriterLocks:
    """Holds named advisory locks on one connection until `release()` (or the `with` ends)."""

    def __init__(
        self,
        connect: Callable[[], object],
        names: Iterable[str],
        log,
        what: str,
        timeout: float | None = None,
    ):
        self.connect, self.log, self.what = connect, log, what
        self.names = sorted(set(names))
        self.timeout = lock_timeout() if timeout is None else timeout
        self.conn = None

    def __enter__(self) -> WriterLocks:
        for stale in {id(h): h for n in self.names if (h := _HELD.get(n)) is not None}.values():
            self.log.warning(
                f"{self.what}: releasing the locks an earlier attempt in this process "
                f"left behind ({', '.join(stale.names)})"
            )
            stale.release()
        self.conn = self.connect()
        self.conn.autocommit = True  # session locks; no transaction left open while holding them
        try:
            deadline = time.monotonic() + self.timeout
            for name in self.names:
                self._acquire(name, deadline)
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        for name in self.names:
            if _HELD.get(name) is self:
                del _HELD[name]
        if self.conn is not None:
            try:
                self.conn.close()  # closing the session frees every lock it holds
            finally:
                self.conn = None

    def _try(self, name: str) -> bool:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,))
            return bool(cur.fetchone()[0])

    def holder(self, name: str) -> str:
        """Who holds `name` now, in words (`another process` when it cannot be seen)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "WITH k AS (SELECT hashtextextended(%s, 0) AS key) "
                + HOLDER_SQL.replace("FROM pg_locks l", "FROM k, pg_locks l"),
                (name,),
            )
            row = cur.fetchone()
        if row is None:
            return "another process"
        pid, app, since = row
        return f"{app or 'a client'} (PostgreSQL pid {pid}, connected {since:%Y-%m-%d %H:%M:%S %Z})"

    def _acquire(self, name: str, deadline: float) -> None:
        if self._try(name):
            _HELD[name] = self
            return
        started = time.monotonic()
        holder = self.holder(name)
        self.log.warning(
            f"{self.what}: waiting for lock {name!r}, held by {holder}: another run is "
            f"writing it (giving up after {self.timeout:.0f} s)"
        )
        while not self._try(name):
            if time.monotonic() >= deadline:
                holder = self.holder(name)
                raise dg.Failure(
                    description=(
                        f"{self.what}: gave up after {time.monotonic() - started:.0f} s waiting for "
                        f"lock {name!r}, held by {holder}. Another run writes the same partitions: "
                        "let it finish (or stop it), then run again. VOLT_LOCK_TIMEOUT_SECONDS sets "
                        "how long to wait."
                    ),
                    allow_retries=False,
                )
            time.sleep(POLL_SECONDS)
        _HELD[name] = self
        self.log.info(f"{self.what}: got lock {name!r} after {time.monotonic() - started:.1f} s")
