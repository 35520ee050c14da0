"""How the admin view refuses a request, in one place for every route
(``AdminRoute``, so a backend that mounts the router answers the same): a body
that is not JSON is 400; a value that fails its check is FastAPI's own 422 at its
field, which echoes at most a short prefix of the value, with every character it
cannot encode written as an escape (a lone surrogate in a JSON string must not
turn the refusal itself into a 500).

An error a route's call raises answers by its kind (``answer``): ``NotFound``
404, ``Conflict`` 409 (a run refused because one waits, or its job is not
configured, says which run waits), ``Invalid`` 422 at the field it names.

Text that cannot be encoded never reaches the database: the path, the query and
a form's fields are checked here before a route reads them (``readable_text``),
and the JSON bodies' text fields by their models (``schemas``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from agnt_jobs.errors import AgntJobsError, Conflict, Invalid, NotFound
from agnt_jobs.scheduler.bodies import NotConfigured
from agnt_jobs.scheduler.run_control import AlreadyWaiting

# How much of a refused value a 422 repeats: enough to recognise it.
ECHO_CHARACTERS = 40
# A message longer than this is cut too (Postgres's line quotes the value).
MESSAGE_CHARACTERS = 300

# What no schedule id, job, status, cursor, filter or form value ever holds:
# control characters (PostgreSQL refuses NUL in text), lone surrogates (no
# encoding has them) and U+FFFD, which is what bytes that were not UTF-8 became
# on their way in (the path, the query and forms are decoded leniently).
_UNREADABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffd]")


def unreadable(value: str) -> str | None:
    """Why ``value`` cannot be taken as text, or None when it can."""
    found = _UNREADABLE.search(value)
    if found is None:
        return None
    character = found.group()
    if "\ud800" <= character <= "\udfff":
        return "not valid Unicode text (a lone surrogate)"
    if character == "\ufffd":
        return "not valid UTF-8"
    return "control characters are not allowed"


def encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode written as a backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shortened(text: str, limit: int = ECHO_CHARACTERS) -> str:
    text = encodable(text)
    return text if len(text) <= limit else text[:limit] + "…"


def _echo(value: Any) -> Any:
    """A refused value as a 422 may repeat it: short text, a number or a flag;
    nothing bigger (a body, a list) is repeated at all."""
    if isinstance(value, str):
        return shortened(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return None


def _location(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else shortened(str(part)) for part in loc]


def _not_json(errors: list[Any]) -> str | None:
    """Why the body is not JSON at all, or None."""
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "it cannot be parsed")
            return f"the body is not JSON: {shortened(str(reason), 80)}"
        if loc == ("body",) and isinstance(error.get("input"), bytes | bytearray):
            return "the body is not JSON: send it as application/json"
    return None


def refusal(error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    not_json = _not_json(errors)
    if not_json is not None:
        return JSONResponse({"detail": not_json}, status.HTTP_400_BAD_REQUEST)
    detail = [
        {
            "type": str(item.get("type", "value_error")),
            "loc": _location(item.get("loc", ())),
            "msg": shortened(str(item.get("msg", "")), MESSAGE_CHARACTERS),
            "input": _echo(item.get("input")),
        }
        for item in errors
    ]
    return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)


def answer(error: AgntJobsError) -> JSONResponse:
    """The HTTP answer to an error of ``error``'s kind; an error of no kind a
    request causes (a database that does not answer) is raised on."""
    if isinstance(error, Invalid):
        # Where the value was given: a body field, unless the error says.
        part = getattr(error, "part", "body")
        return refusal(invalid(part, error.field, str(error), error.value))
    if isinstance(error, NotFound):
        return JSONResponse({"detail": str(error)}, status.HTTP_404_NOT_FOUND)
    if isinstance(error, AlreadyWaiting | NotConfigured):
        waiting = error.job_id if isinstance(error, AlreadyWaiting) else None
        return JSONResponse(
            {"detail": str(error), "waiting_job_id": waiting},
            status.HTTP_409_CONFLICT,
        )
    if isinstance(error, Conflict):
        return JSONResponse({"detail": str(error)}, status.HTTP_409_CONFLICT)
    raise error


class AdminRoute(APIRoute):
    """A route whose refusals are ``refusal``'s and whose errors are ``answer``'s,
    wherever the router is mounted."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def refusing(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return refusal(error)
            except AgntJobsError as error:
                return answer(error)

        return refusing


def invalid(
    part: str, field: str, message: str, value: Any = None
) -> RequestValidationError:
    """FastAPI's own 422 for ``field`` of ``part`` (path, query, body)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (part, field), "msg": message, "input": value}]
    )


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


async def readable_text(request: Request) -> None:
    """Every path parameter, query parameter and form field is text that can be
    stored: 422 at the first that is not."""
    parts: list[tuple[str, Any]] = [
        ("path", request.path_params.items()),
        ("query", request.query_params.multi_items()),
    ]
    if request.headers.get("content-type", "").startswith(_FORMS):
        # Parsed once: the route's own Form fields read the same parse.
        parts.append(("body", (await request.form()).multi_items()))
    for part, items in parts:
        for name, value in items:
            if not isinstance(value, str):
                continue
            why = unreadable(str(name)) or unreadable(value)
            if why is not None:
                raise invalid(part, str(name), f"{why} in the {part}")
