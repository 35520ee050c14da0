"""The errors a caller of agnt-jobs handles, under one base, ``AgntJobsError``.

Each says in one line what went wrong and what to do; its kind says how a door
answers it, so the CLI and the admin view each map kinds in one place instead of
naming every error:

- ``NotFound``: an id nobody knows (HTTP 404; the CLI exits 2);
- ``Invalid``: a value that cannot be taken (HTTP 422 at its ``field``; exit 2);
- ``Conflict``: a request the present state forbids (HTTP 409; exit 2 unless the
  error says otherwise);
- ``Unavailable``: something the request needs does not answer (exit 1).

Signals that travel inside a worker (a run's deadline, a lost connection the
worker recovers from) are not caller errors and stay outside this tree: a door
that handles ``AgntJobsError`` must never swallow one.
"""

from __future__ import annotations

from typing import Any


class AgntJobsError(Exception):
    """An error the caller can act on; the message is its one line."""

    # What ``agnt-jobs`` exits with when the error ends a command: the operator's
    # input or the present state is at fault.
    exit_code = 2


class NotFound(AgntJobsError):
    """An id (a schedule, a job, a run) that is not known."""


class Invalid(AgntJobsError):
    """A value that cannot be taken. ``field`` names where it was given (a body
    field, a query parameter, an option), ``value`` what was given, when known."""

    def __init__(self, message: str, field: str = "body", value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class Conflict(AgntJobsError):
    """A request that the present state forbids; it may succeed later."""


class Unavailable(AgntJobsError):
    """Something the request needs (the database, a peer) does not answer."""

    exit_code = 1
