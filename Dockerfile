# agnt-jobs worker image: `docker run agnt-jobs` runs the stock Procrastinate worker
# on our App. Set AGNT_DATABASE_URL, and migrate once per deploy with
# `docker run agnt-jobs agnt-jobs db upgrade` (the migrations ship in the package).
# tests/acceptance/test_package.py runs these steps in a virtualenv, where no image
# can be built: keep every RUN a plain command of the image's Python.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md alembic.ini ./
COPY migrations migrations
COPY agnt_jobs agnt_jobs
COPY periodic periodic
COPY cron cron
# No extras: the embedded server (agnt-jobs[embedded]) has no place in production.
RUN pip install --no-cache-dir .

FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PROCRASTINATE_APP=agnt_jobs.app.app
# A numeric user, so that Kubernetes' runAsNonRoot can verify it without a passwd
# entry; the worker writes nothing to disk.
USER 10001:10001
WORKDIR /app
# SIGTERM: running jobs finish (up to AGNT_SHUTDOWN_GRACEFUL_TIMEOUT), then exit 0.
STOPSIGNAL SIGTERM
CMD ["procrastinate", "worker"]
