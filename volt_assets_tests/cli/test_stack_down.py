"""After `make demo` the stack is down: the commands say so at once, with what to run.

A `.volt/stack.env` left by a stack that is no longer running points every command at closed
ports; each command fails without retrying and names `volt-assets stack up`."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from volt_assets.devstack import stack

BIN = Path(sys.executable).parent
HINT = "the embedded stack is not running: start it with `volt-assets stack up`"


def stopped_stack(tmp_path: Path) -> dict[str, str]:
    pg = stack.free_port()
    s3 = stack.free_port(exclude=(pg,))
    lines = [
        "POSTGRES_HOST=127.0.0.1",
        f"POSTGRES_PORT={pg}",
        "POSTGRES_DB=volt",
        "POSTGRES_USER=volt",
        "POSTGRES_PASSWORD=not-for-use",
        f"AWS_ENDPOINT_URL=http://127.0.0.1:{s3}",
        "AWS_ACCESS_KEY_ID=testing",
        "AWS_SECRET_ACCESS_KEY=testing",
    ]
    (tmp_path / "stack.env").write_text("\n".join(lines) + "\n")
    keep = ("PATH", "HOME", "PYTHONPATH", "LANG")
    env = {k: v for k, v in os.environ.items() if k in keep}
    (tmp_path / "dagster_home").mkdir()
    return {**env, "VOLT_STATE_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home")}


def run(
    args: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def test_the_commands_say_the_stack_is_down(tmp_path):
    env = stopped_stack(tmp_path)
    # the fault: nothing listens at the stack's addresses
    endpoint = [
        line for line in (tmp_path / "stack.env").read_text().splitlines() if "ENDPOINT" in line
    ]
    port = int(endpoint[0].rsplit(":", 1)[1])
    assert socket.socket().connect_ex(("127.0.0.1", port)) != 0

    lake, seconds = run(
        [str(BIN / "volt-assets"), "lake", "sql", "SELECT 1 FROM staging.orders"], env, tmp_path
    )
    assert lake.returncode == 1
    assert HINT in lake.stderr and "nothing readable" not in lake.stderr
    assert seconds < 5

    presign, seconds = run([str(BIN / "volt-assets"), "presign", "1"], env, tmp_path)
    assert presign.returncode == 1
    assert HINT in presign.stdout + presign.stderr
    assert seconds < 5

    materialize, _ = run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "volt_assets"]
        + ["--select", "raw/orders", "--partition", "2025-01-02"],
        env,
        tmp_path,
    )
    out = materialize.stdout + materialize.stderr
    assert materialize.returncode != 0
    assert HINT in out
    assert "STEP_UP_FOR_RETRY" not in out  # failed at once: no retry can start a stack
