"""Named SQL queries kept in ``agnt_jobs/db/sql/*.sql``.

Each query is a block that starts with a ``-- name --`` line; the comment lines under
it say what it does. Placeholders are psycopg's ``%(name)s``, so one query serves
both Procrastinate's connector (the worker's event loop) and SQLAlchemy's
``exec_driver_sql`` (the CLI and the job bodies).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


@functools.cache
def load(filename: str) -> dict[str, str]:
    text = (resources.files("agnt_jobs.db") / "sql" / filename).read_text("utf-8")
    parts = _HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {
        name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }
