"""Child process of the job benchmark: run one job body once, exactly as a worker's
task does (same settings, engine, RunContext), and print its result and timing as
JSON. The parent reads the process's peak RSS from the kernel.

    AGNT_DATABASE_URL=... python -m agnt_jobs.bench.runjob JOB_ID --at ISO8601
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import datetime

import sqlalchemy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job_id")
    parser.add_argument("--at", required=True, help="tick and now of the run")
    args = parser.parse_args()

    import agnt_jobs.app  # noqa: F401  (registers every body, as a worker does)
    from agnt_jobs import db, logs
    from agnt_jobs.scheduler.bodies import BODIES, RunContext
    from agnt_jobs.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    at = datetime.fromisoformat(args.at)
    engine = db.engine()
    # A worker's pool is warm when a job starts: open (and pre-ping) a connection
    # before the clock starts, as the baseline statement's connection is.
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
    # What the worker holds before any job runs: the imports and the engine.
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = BODIES[args.job_id](
        RunContext(engine=engine, settings=settings, tick=at, now=at, job_id=None)
    )
    seconds = time.perf_counter() - started
    engine.dispose()
    print(
        json.dumps(
            {
                "result": result,
                "seconds": round(seconds, 4),
                "rss_before_mb": round(rss_before, 1),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
