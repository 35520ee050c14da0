# agnt-jobs worker image: `docker run agnt-jobs` runs the stock Procrastinate worker
# on our App. Set AGNT_DATABASE_URL (and migrate once per deploy with
# `docker run agnt-jobs agnt-jobs db upgrade`).
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY agnt_jobs agnt_jobs
COPY periodic periodic
COPY cron cron
RUN pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --create-home --uid 10001 agnt
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations migrations
# The installed package looks for alembic.ini beside itself; point it here.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AGNT_ALEMBIC_INI=/app/alembic.ini \
    PROCRASTINATE_APP=agnt_jobs.app.app
# Only used when no AGNT_DATABASE_URL is set: the embedded Postgres's data directory.
RUN mkdir -p /app/.agnt && chown agnt /app/.agnt
USER agnt
# SIGTERM: running jobs finish (up to AGNT_SHUTDOWN_GRACEFUL_TIMEOUT), then exit 0.
STOPSIGNAL SIGTERM
CMD ["procrastinate", "worker"]
