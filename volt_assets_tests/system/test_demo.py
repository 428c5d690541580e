"""`volt-assets demo` (`make demo`) as a newcomer sees it: a stack of its own, progress per
asset, the summary and what to try next in at most 150 lines, Dagster's event log in a file."""

import os
import re
import subprocess
import sys
from pathlib import Path

VOLT_ASSETS = str(Path(sys.executable).parent / "volt-assets")
# Settings of the suite's own services: the demo must use the stack it starts.
OWN_SERVICES = (
    "POSTGRES_",
    "AWS_",
    "S3_BUCKET_NAME",
    "VOLT_",
    "DAGSTER_HOME",
    "MARTS_DATABASE_URL",
)
ASSETS = (
    "raw/electrical_components",
    "raw/users",
    "raw/orders",
    "staging/electrical_components",
    "staging/users",
    "staging/orders",
    "images/component_images",
    "marts/dim_components",
    "marts/daily_category_sales",
    "marts/users_mart",
)


def demo_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SERVICES)}
    env["VOLT_STATE_DIR"] = str(state)
    return env


def test_the_demo_reads_well(tmp_path):
    env = demo_env(tmp_path / "state")
    try:
        done = subprocess.run(
            [
                VOLT_ASSETS,
                "demo",
                "--days",
                "3",
                "--components",
                "200",
                "--users",
                "50",
                "--orders",
                "300",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        lines = out.splitlines()
        assert 40 <= len(lines) <= 150, out

        log = Path(re.search(r"Dagster's event log: (\S+)", out).group(1))
        assert log.is_file() and log.parent == tmp_path / "state" / "logs"
        events = log.read_text(encoding="utf-8")
        assert "ASSET_MATERIALIZATION" in events and "STEP_SUCCESS" in events
        assert "ASSET_MATERIALIZATION" not in out and " - DEBUG - " not in out

        progress = {
            m.group(1): m
            for m in re.finditer(
                r"^  done    (\S+) +(\S+) \((\d+) days\) +([\d,]+ rows|-) +(\d+\.\d) s$",
                out,
                re.MULTILINE,
            )
        }
        assert set(ASSETS) <= set(progress), out
        assert all(m.group(3) == "3" for m in progress.values())
        assert progress["raw/electrical_components"].group(4) == "200 rows"
        assert progress["raw/users"].group(4) == "50 rows"

        assert re.search(r"^asset +partitions +rows +checks$", out, re.MULTILINE)
        assert re.search(r"^run [0-9a-f-]{36}: succeeded$", out, re.MULTILINE)
        after = out[out.index("What next:") :].splitlines()
        assert any("make dev" in line for line in after)
        queries = [line.strip() for line in after if " lake sql " in line]
        assert len(queries) == 2  # one of staging, one of the marts' copies

        # What to try next works as printed, once the stack is back.
        assert (
            subprocess.run(
                [VOLT_ASSETS, "stack", "up"], cwd=tmp_path, env=env, capture_output=True
            ).returncode
            == 0
        )
        answers = [
            subprocess.run(["bash", "-c", q], cwd=tmp_path, env=env, capture_output=True, text=True)
            for q in queries
        ]
        assert [a.returncode for a in answers] == [0, 0], [a.stderr for a in answers]
        assert answers[0].stdout.splitlines()[-1] == "(3 rows)"  # one per day of staging/orders
        assert answers[1].stdout.splitlines()[0].startswith("category ")
    finally:
        subprocess.run([VOLT_ASSETS, "stack", "down"], cwd=tmp_path, env=env, capture_output=True)
