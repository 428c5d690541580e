"""Materialisations that a test can kill, or watch fail.

- `CliRun`: `dagster asset materialize -m volt_assets --select ... --partition D` as a
  subprocess in its own process group (env: os.environ + the test's variables, DAGSTER_HOME
  set, cwd a scratch folder so no developer `.env` is read). `kill()` SIGKILLs the group:
  the run and every step process it started die at once, as on an OOM kill or a lost node.
- `ForkedRun`: the same materialisation (`pipeline.materialize`, in-process executor) in a
  forked child, its own process group too. Forking shares the imported Dagster, so a run
  starts in milliseconds instead of the CLI's seconds; kill tests use it for most points.
- `run_in_child(...)`: run in a forked child and report how it ended (success, seconds,
  failure texts), stopping at the first step retry Dagster schedules: "fails at once" is
  then measured in seconds even when it would have retried for a minute.

Kill points come from the outside, never from hooks in package code: the S3 proxy holds
the request of a chosen key (`S3FaultProxy.hold`), or a test polls the bucket or the
database (`wait_until`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.02, what: str = "condition"
):
    """Poll until `predicate()` is truthy; its value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def materialize_argv(select: list[str], partition: str, in_process: bool = True) -> list[str]:
    """`dagster asset materialize` of `select` as a user types it, for one day or a range
    (`D1...D2`), in the run's own process unless `in_process` is False."""
    flag = "--partition-range" if "..." in partition else "--partition"
    args = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "volt_assets",
        "--select",
        ",".join(select),
        flag,
        partition,
    ]
    return args + (["--config-json", IN_PROCESS] if in_process else [])


class CliRun:
    """`dagster asset materialize` in a process group of its own."""

    def __init__(
        self,
        env: dict[str, str],
        select: list[str],
        partition: str,
        cwd: Path,
        in_process: bool = True,
    ):
        self.args = materialize_argv(select, partition, in_process)
        self.env = {**os.environ, **env}
        self.cwd = cwd
        self.stdout_path = cwd / "cli.stdout"
        self.stderr_path = cwd / "cli.stderr"
        self.process: subprocess.Popen | None = None

    def start(self) -> CliRun:
        self.cwd.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        _kill_group(self.process.pid)
        self.process.wait(30)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    @property
    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )


class ForkedRun:
    """`pipeline.materialize(select, partition)` in a forked child with its own process group."""

    def __init__(self, env: dict[str, str], select: list[str], partition: str | tuple[str, str]):
        self.env, self.select, self.partition = env, select, partition
        self.pid: int | None = None
        self._read: int | None = None

    def start(self) -> ForkedRun:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, report, never return into pytest
            code = 0
            try:
                os.setpgid(0, 0)
                os.close(read)
                os.environ.update(self.env)
                from volt_assets_tests.pipeline import materialize

                result = materialize(self.select, self.partition, raise_on_error=False)
                os.write(write, json.dumps({"success": result.success}).encode())
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                os.write(write, json.dumps({"error": repr(exc)}).encode())
                code = 1
            finally:
                os._exit(code)
        try:
            os.setpgid(pid, pid)  # also here: no race with a kill before the child ran setpgid
        except (PermissionError, ProcessLookupError):
            pass
        os.close(write)
        self.pid, self._read = pid, read
        return self

    def kill(self) -> None:
        _kill_group(self.pid)
        os.waitpid(self.pid, 0)
        os.close(self._read)

    def wait(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError("forked run did not finish")
            time.sleep(0.05)
        with os.fdopen(self._read, "rb") as pipe:
            data = pipe.read()
        return json.loads(data or b"{}")


def error_texts(error) -> list[str]:
    """The message of a SerializableErrorInfo and of every cause/context under it."""
    out = []
    while error is not None:
        out.append(error.message)
        error = error.cause or error.context
    return out


def run_in_child(
    select: list[str], partition: str, env: dict[str, str], deadline: float = 20.0
) -> dict:
    """Materialise in a forked child; stop at the first scheduled retry. Returns
    {"success", "seconds", "retried", "texts", "timed_out"}; `texts` are the failure messages
    (and their causes) of failed or retried steps."""
    read, write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setpgid(0, 0)
            os.close(read)
            os.environ.update(env)
            import dagster as dg
            from dagster._core.instance import DagsterInstance

            from volt_assets_tests.pipeline import materialize

            original = DagsterInstance.handle_new_event

            def report_and_exit(payload: dict) -> None:
                os.write(write, json.dumps(payload).encode())
                os._exit(0)

            def watch(self, event, *args, **kwargs):  # only in this throwaway child
                original(self, event, *args, **kwargs)
                dagster_event = event.dagster_event
                if (
                    dagster_event is not None
                    and dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
                ):
                    data = dagster_event.event_specific_data
                    report_and_exit(
                        {"success": False, "retried": True, "texts": error_texts(data.error)}
                    )

            DagsterInstance.handle_new_event = watch
            result = materialize(
                select, partition, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
            )
            texts = []
            for event in result.all_events:
                if event.event_type_value == "STEP_FAILURE":
                    texts += error_texts(event.step_failure_data.error)
            report_and_exit({"success": result.success, "retried": False, "texts": texts})
        except BaseException as exc:  # noqa: BLE001
            os.write(
                write,
                json.dumps(
                    {"success": False, "retried": False, "texts": [repr(exc)], "crashed": True}
                ).encode(),
            )
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    timed_out = False
    while True:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > deadline:
            _kill_group(pid)
            os.waitpid(pid, 0)
            timed_out = True
            break
        time.sleep(0.05)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    result = json.loads(data) if data else {"success": False, "retried": False, "texts": []}
    result["seconds"] = time.monotonic() - started
    result["timed_out"] = timed_out
    return result
