"""`run_failure_alert`: every failed run of the code location is logged and, when
VOLT_ALERT_WEBHOOK_URL is set, POSTed as JSON (run id, job, failed steps, error, link to the run);
a webhook that is down never fails the sensor, and no secret reaches the alert.
"""

import json
import os
import urllib.error
import urllib.request

import dagster as dg

from volt_assets.settings import mask_dsn

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
WEBHOOK_TIMEOUT_SECONDS = 5
SECRET_VARIABLES = (
    "POSTGRES_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "VOLT_API_TOKEN",
)
MAX_ERROR_CHARS = 500


def scrub(text: str) -> str:
    """`text` without passwords: DSN passwords and the values of the secret variables masked."""
    text = mask_dsn(text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:  # a one-letter value would mask every such letter
            text = text.replace(value, "***")
    return text


def error_summary(error) -> str:
    """Dagster's wrapper line plus the root cause (`RuntimeError: ...`), which says what broke."""
    root = error
    while getattr(root, "cause", None) is not None:
        root = root.cause
    top = error.message.strip()
    return top if root is error else f"{top} caused by {root.message.strip()}"


def failure_alert(context: dg.RunFailureSensorContext) -> dict:
    """The alert of a failed run: what, where and a link; no run config, no secrets."""
    run = context.dagster_run
    step_events = context.get_step_failure_events()
    steps = [e.step_key for e in step_events]
    errors = [
        error_summary(e.event_specific_data.error)
        for e in step_events
        if e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
    ]
    error = errors[0] if errors else (context.failure_event.message or "run failed")
    error = scrub(error.strip())
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + "…"
    base = (os.environ.get("VOLT_DAGSTER_URL") or DEFAULT_DAGSTER_URL).rstrip("/")
    link = f"{base}/runs/{run.run_id}"
    steps_text = ", ".join(steps) or "no step"
    return {
        "event": "dagster_run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "failed_steps": steps,
        "error": error,
        "url": link,
        "text": f"Dagster run {run.run_id} of {run.job_name} failed ({steps_text}): {error} {link}",
    }


def post_alert(url: str, alert: dict) -> str | None:
    """POST the alert as JSON; the reason it failed, or None. Never raises, never echoes the URL
    (webhook URLs often carry their own secret)."""
    if not url.lower().startswith(("http://", "https://")):
        return "VOLT_ALERT_WEBHOOK_URL is not an http(s) URL"
    request = urllib.request.Request(
        url,
        data=json.dumps(alert).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "volt-assets-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return f"the webhook answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the webhook is unreachable ({type(reason).__name__})"
    return None


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run and POSTs it to VOLT_ALERT_WEBHOOK_URL when set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext):
    alert = failure_alert(context)
    context.log.error(alert["text"])
    url = os.environ.get("VOLT_ALERT_WEBHOOK_URL", "").strip()
    if url and (problem := post_alert(url, alert)):
        context.log.warning(f"alert of run {alert['run_id']} not delivered: {problem}")
