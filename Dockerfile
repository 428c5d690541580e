# syntax=docker/dockerfile:1
# The volt_assets image: the code location, and the Dagster webserver and daemon that serve it
# (docker-compose.yml), or the user-code image of the Dagster Helm chart (deploy/helm/values.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home
# Containers are configured by their environment only, never by an embedded stack's stack.env.
ENV VOLT_USE_STACK=0
# Dagster's opt-in event batching: a range run's per-partition events in a few commits, not one
# each (volt_assets/definitions.py sets the same for the processes that load the code location).
ENV DAGSTER_EVENT_BATCH_SIZE=200

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin dagster \
    && mkdir -p "$DAGSTER_HOME" \
    && chown dagster:dagster "$DAGSTER_HOME"

WORKDIR /opt/dagster/app
# The package first, so a change under sql/ or deploy/ does not reinstall the dependencies.
COPY pyproject.toml README.md ./
COPY volt_assets ./volt_assets
RUN --mount=type=cache,target=/root/.cache/pip pip install .
# SQL files the code reads from the project root (settings.project_root() is this WORKDIR).
COPY sql ./sql

# The instance reads DAGSTER_POSTGRES_* when it starts; the workspace points at `code-location`.
COPY --chown=dagster:dagster deploy/dagster.postgres.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace.docker.yaml /opt/dagster/workspace.yaml

USER dagster
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "volt_assets"]
