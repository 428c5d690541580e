"""Screenshots of the Dagster UI for the README (`make screenshots`).

Runs the project the way a user does, in a state directory of its own (default
`.volt/screenshots`, wiped first, so the developer's `.volt` is never touched):

1. `volt-assets stack up` (embedded PostgreSQL + S3) with VOLT_STATE_DIR pointing there;
2. `volt-assets seed --reset` of a small shop whose window ends yesterday (UTC);
3. `dagster asset materialize -m volt_assets --select '*' --partition-range A...B` (one run);
4. `dagster dev -w workspace.yaml` on a free port of 127.0.0.1;
5. headless Chromium (Debian's `chromium` + `chromedriver`, driven by Selenium) opens the
   global asset lineage, the upstream lineage of `marts/users_mart` (from Volt's tables to the
   mart), the overview of `staging/orders` (its columns) and its partitions page, waits until
   the single-page app has rendered each (its text is on the page, no spinner is left), and
   saves `docs/img/asset-graph.png`, `lineage.png`, `columns.png` and `partitions.png`;
6. stops everything it started (Chromium, `dagster dev`, the stack), on error and on
   SIGINT/SIGTERM too.

Needs `apt-get install chromium chromium-driver` and the `screenshots` extra (selenium).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless Chromium as root on a machine without network: no sandbox, no GPU, and nothing
# that phones home (without the background-networking flags it stalls or fails).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
# Settings this script takes from its own stack only. They are blanked (empty counts as unset
# in volt_assets) rather than dropped, so neither the caller's shell nor a `.env` in the
# checkout (read with lower precedence than the environment) can point a run elsewhere.
FOREIGN_SETTINGS = (
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "MARTS_DATABASE_URL",
    "S3_BUCKET_NAME",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "VOLT_IMAGES_DIR",
    "VOLT_PARTITIONS_START",
    "VOLT_ALERT_WEBHOOK_URL",
    "DAGSTER_POSTGRES_HOST",
    "DAGSTER_POSTGRES_PORT",
    "DAGSTER_POSTGRES_DB",
    "DAGSTER_POSTGRES_USER",
    "DAGSTER_POSTGRES_PASSWORD",
)
# What must be on screen before each shot. The graph shows asset names, the partitions page
# the partition keys of the materialised days.
GRAPH_TEXT = (
    "orders",
    "users",
    "electrical_components",
    "dim_components",
    "daily_category_sales",
    "users_mart",
    "component_images",
    "pictures",
)
# The lineage of one mart, from Volt's tables (external assets) through raw and staging.
LINEAGE_ASSET = "marts/users_mart"
LINEAGE_TEXT = ("users_mart", "staging", "raw", "source", "users", "orders")
# The columns of the asset whose partitions are shot: names, Arrow types, descriptions.
COLUMNS_TEXT = (
    "Columns",
    "unit_price",
    "decimal128(12, 2)",
    "_extracted_at",
    "Price paid per unit",
)
LOADING_SELECTOR = "[role='progressbar'], [class*='Spinner'], [class*='spinner']"


def log(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


def run(args: list[str], env: dict[str, str], timeout: float) -> None:
    log("$ " + " ".join(args))
    subprocess.run(args, env=env, cwd=ROOT, check=True, timeout=timeout)


def _terminate_group(
    process: subprocess.Popen,
    name: str,
    timeout: float = 90,
    graceful: signal.Signals = signal.SIGTERM,
) -> None:
    """Stop a process started with `start_new_session`: `graceful` to its leader (SIGINT lets
    `dagster dev` stop its webserver, daemon and code server in order), SIGKILL to the whole
    process group after `timeout`, and SIGKILL to whatever of the group outlived its leader."""
    if process.poll() is None:
        log(f"stopping {name} (pid {process.pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, graceful)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in {timeout:.0f} s: SIGKILL")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _reap_children() -> None:
    """Last resort: end any descendant of this process still alive (by pid, never by name)."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        log(f"killing leftover process {child.pid}")
        with contextlib.suppress(psutil.Error):
            child.kill()


def _raise_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------- the stack and the data


def base_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}
    env.update(dict.fromkeys(FOREIGN_SETTINGS, ""))
    env.update(
        VOLT_STATE_DIR=str(state),
        VOLT_USE_STACK="1",
        DAGSTER_HOME=str(state / "dagster_home"),
        PYTHONUNBUFFERED="1",
    )
    return env


def stack_env(state: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` plus what `stack up` and the seed wrote into the state dir's stack.env."""
    from volt_assets.settings import parse_env_file

    return {**env, **parse_env_file(state / "stack.env")}


def stack(action: str, env: dict[str, str]) -> None:
    run([str(BIN / "volt-assets"), "stack", action], env, timeout=300)


def wipe_state(state: Path, env: dict[str, str]) -> None:
    """A fresh state dir: stop a stack left there by an interrupted earlier run, then delete it."""
    if not state.exists():
        return
    if (state / "stack.env").exists():
        subprocess.run(
            [str(BIN / "volt-assets"), "stack", "down"],
            env=env,
            cwd=ROOT,
            timeout=300,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    resolved, root = state.resolve(), ROOT.resolve()
    if resolved in (root, root / ".volt", Path.home().resolve(), Path("/")):
        raise SystemExit(f"refusing to delete {resolved}: give --state-dir a directory of its own")
    shutil.rmtree(resolved)


# ---------------------------------------------------------------- dagster dev


def graphql(port: int, query: str) -> dict:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_code_location(
    port: int, process: subprocess.Popen, dev_log: Path, timeout: float
) -> None:
    """Until the webserver answers and the code location is loaded with our assets."""
    deadline = time.time() + timeout
    last = "no answer"
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dagster dev exited early ({process.returncode}):\n{dev_log.read_text()[-3000:]}"
            )
        try:
            answer = graphql(port, "{ assetNodes { assetKey { path } } }")
            keys = {
                "/".join(n["assetKey"]["path"])
                for n in (answer.get("data") or {}).get("assetNodes") or []
            }
            if {"staging/orders", "marts/users_mart"} <= keys:
                log(f"code location loaded: {len(keys)} assets")
                return
            last = f"{len(keys)} assets so far"
        except OSError as exc:
            last = str(exc)
        time.sleep(2)
    raise TimeoutError(
        f"dagster dev did not serve the code location in {timeout:.0f} s ({last}):\n"
        f"{dev_log.read_text()[-3000:]}"
    )


# ---------------------------------------------------------------- chromium


def start_browser(profile: Path, chromedriver_log: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with the driver's path below, Selenium Manager never runs
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # chromedriver (and the Chromium it starts) in a process group of their own, so that the
    # cleanup can end them all even if `quit()` cannot reach the driver any more.
    service = Service(
        executable_path=CHROMEDRIVER,
        log_output=str(chromedriver_log),
        popen_kw={"start_new_session": True},
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(60)
    return driver, service


def stop_browser(driver, service) -> None:
    if driver is not None:
        with contextlib.suppress(Exception):
            driver.quit()
    process = getattr(service, "process", None)
    if process is not None:
        _terminate_group(process, "chromedriver", timeout=10)


def page_text(driver) -> str:
    return driver.execute_script("return document.body ? document.body.innerText : ''") or ""


def wait_until_rendered(
    driver, what: str, expected: tuple[str, ...], timeout: float, settle: float = 3.0
) -> None:
    """Until every expected text is on the page and no spinner or "Loading" is, for `settle`
    seconds in a row (the UI fills in live data and the graph animates its layout)."""
    deadline = time.time() + timeout
    stable_since = None
    missing: list[str] = list(expected)
    while time.time() < deadline:
        text = page_text(driver)
        missing = [t for t in expected if t not in text]
        spinners = driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].filter(e => e.offsetParent !== null).length",
            LOADING_SELECTOR,
        )
        if not missing and not spinners and "Loading" not in text:
            stable_since = stable_since or time.time()
            if time.time() - stable_since >= settle:
                log(f"{what}: rendered")
                return
        else:
            stable_since = None
        time.sleep(1)
    raise TimeoutError(
        f"{what} did not render in {timeout:.0f} s; missing {missing}; page text:\n"
        f"{page_text(driver)[:2000]}"
    )


def shoot(
    driver,
    url: str,
    what: str,
    expected: tuple[str, ...],
    target: Path,
    size: tuple[int, int],
    timeout: float,
) -> None:
    """Open `url` in a fresh viewport of `size`, wait until it is rendered, save a PNG."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    log(f"{what}: {url}")
    driver.get(url)
    wait_until_rendered(driver, what, expected, timeout)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".tmp.png")
    if not driver.save_screenshot(str(tmp)):
        raise RuntimeError(f"screenshot of {what} failed")
    tmp.replace(target)
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    log(f"{what}: wrote {shown} ({width}x{height}, {target.stat().st_size // 1024} KiB)")


def graph_fits(driver) -> bool:
    """Whether the lineage graph's SVG lies wholly inside the viewport."""
    return bool(
        driver.execute_script("""
        const svgs = [...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 300);
        return svgs.length > 0 && svgs.every(s => { const r = s.getBoundingClientRect();
            return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; });""")
    )


def take_screenshots(
    port: int, out: Path, asset: str, days: list[str], profile: Path, state: Path, timeout: float
) -> None:
    base = f"http://127.0.0.1:{port}"
    # What a first visit shows: the "Join the Dagster community" dialog. Marked as seen in this
    # throwaway instance, as the dialog's own "Skip" does.
    graphql(port, "mutation { setNuxSeen }")
    nodes = graphql(port, "{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
    groups = sorted({n["groupName"] for n in nodes if n["groupName"]})
    driver = service = None
    try:
        driver, service = start_browser(profile, state / "chromedriver.log")
        # The global lineage with every group expanded (the UI's `expanded` query parameter;
        # collapsed, it shows one box per group). The UI zooms it to fit only when it is legible
        # at that size: 1900 x 2000 px hold the five layers (source to marts) with full names;
        # `source/pictures` sits just before `images`, which makes the graph tall.
        expanded = ",".join(f"global@global:{group}" for group in groups)
        shoot(
            driver,
            f"{base}/asset-groups?expanded={urllib.parse.quote(expanded, safe='@:,')}",
            "asset graph",
            GRAPH_TEXT + ("Global asset lineage", "Asset checks", "Partitions"),
            out / "asset-graph.png",
            (1900, 2000),
            timeout,
        )
        if not graph_fits(driver):
            log("warning: the asset graph is larger than the screenshot; some of it is cut off")
        # One mart's upstream lineage: source -> raw -> staging -> mart, every group shown.
        shoot(
            driver,
            f"{base}/assets/{LINEAGE_ASSET}?view=lineage&lineageScope=upstream&lineageDepth=4",
            f"lineage of {LINEAGE_ASSET}",
            LINEAGE_TEXT,
            out / "lineage.png",
            (1600, 900),
            timeout,
        )
        # The asset's overview: its columns (names, types, descriptions), owners, tags, code version.
        shoot(
            driver,
            f"{base}/assets/{asset}?view=overview",
            f"columns of {asset}",
            COLUMNS_TEXT,
            out / "columns.png",
            (1600, 1400),
            timeout,
        )
        # The partitions page of one asset with its last day selected: the status of every
        # day and the metadata of the selected day's materialisation, tall enough to show all
        # of it (Dagster's `dagster/row_count` comes last).
        name = asset.split("/")[-1]
        shoot(
            driver,
            f"{base}/assets/{asset}?view=partitions&partition={days[-1]}",
            f"partitions of {asset}",
            (
                name,
                "Partitions",
                "Materialized",
                "Metadata",
                "dagster/row_count",
                days[0],
                days[-1],
            ),
            out / "partitions.png",
            (1600, 1700),
            timeout,
        )
    finally:
        stop_browser(driver, service)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=ROOT / ".volt" / "screenshots",
        help="VOLT_STATE_DIR of this run, wiped first (default .volt/screenshots)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "img",
        help="where the PNGs go (default docs/img)",
    )
    parser.add_argument(
        "--days", type=int, default=5, help="days of shop life to seed and materialise (default 5)"
    )
    parser.add_argument(
        "--dirty-rate",
        default="0.005",
        help="the seed's share of dirty rows (default 0.005: some quarantine, and no blocking "
        "check fails on a shop this small)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds to wait for the code location and for each page to render (default 300)",
    )
    parser.add_argument(
        "--asset",
        default="staging/orders",
        help="the partitioned asset whose partitions page is shot (default staging/orders)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not Path(tool).is_file():
            log(f"{tool} not found: apt-get install chromium chromium-driver")
            return 2
    try:
        import selenium  # noqa: F401
    except ImportError:
        log("selenium is missing: pip install -e '.[screenshots]'")
        return 2
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)

    state = args.state_dir.resolve()
    out = args.out.resolve()
    asset = args.asset.strip("/")
    env = base_env(state)
    os.environ["VOLT_STATE_DIR"] = str(state)  # for what this process imports from volt_assets
    wipe_state(state, env)
    state.mkdir(parents=True)
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=args.days - 1)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range(args.days)]

    stack_started = False
    dev = None
    profile = Path(tempfile.mkdtemp(prefix="volt-chromium-"))
    try:
        stack_started = True  # `up` may fail halfway: `down` then stops what did start
        stack("up", env)
        env = stack_env(state, env)
        run(
            [
                str(BIN / "volt-assets"),
                "seed",
                "--reset",
                "--components",
                "300",
                "--users",
                "100",
                "--orders",
                "800",
                "--days",
                str(args.days),
                "--dirty-rate",
                args.dirty_rate,
                "--end-date",
                end.isoformat(),
            ],
            env,
            timeout=600,
        )
        env = stack_env(state, env)
        env["VOLT_PARTITIONS_START"] = start.isoformat()

        from volt_assets.devstack.instance_config import prepare_dagster_home
        from volt_assets.devstack.stack import free_port

        prepare_dagster_home(env["DAGSTER_HOME"], environ=env)
        run(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "volt_assets",
                "--select",
                "*",
                "--partition-range",
                f"{start.isoformat()}...{end.isoformat()}",
            ],
            env,
            timeout=1800,
        )

        port = free_port()
        dev_log = state / "dagster-dev.log"
        log(f"$ dagster dev -w workspace.yaml -h 127.0.0.1 -p {port}  (log: {dev_log})")
        with open(dev_log, "w") as sink:
            dev = subprocess.Popen(
                [
                    str(BIN / "dagster"),
                    "dev",
                    "-w",
                    "workspace.yaml",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
                env=env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_code_location(port, dev, dev_log, args.timeout)
        take_screenshots(port, out, asset, days, profile, state, args.timeout)
        return 0
    finally:
        if dev is not None:
            _terminate_group(dev, "dagster dev", graceful=signal.SIGINT)
        if stack_started:
            try:
                stack("down", env)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up, then report
                log(f"stack down failed: {exc}")
        _reap_children()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
