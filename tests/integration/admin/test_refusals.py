"""What the admin view cannot read is refused at its field, never a 500: a lone
surrogate in any text field of any JSON body, bytes that are not UTF-8 in the path,
the query or a form; a refusal repeats at most a short prefix of the value; a body
that is not JSON is 400."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.support.admin_data import HEADERS

SURROGATE = "\ud800"
JSON = {**HEADERS, "Content-Type": "application/json"}

# Every text field of every JSON body, with the rest of a body that is valid.
TEXT_FIELDS = [
    ("PATCH", "/admin/scheduler/booking_reminders", {"dry_run": True}, "cron"),
    ("PATCH", "/admin/scheduler/booking_reminders", {"dry_run": True}, "zone"),
    (
        "PATCH",
        "/admin/scheduler/booking_reminders",
        {"dry_run": True},
        "misfire_policy",
    ),
    ("PATCH", "/admin/scheduler/booking_reminders", {"dry_run": True}, "timeout"),
    ("PATCH", "/admin/scheduler/booking_reminders", {"cron": "1 * * * *"}, "by"),
    ("POST", "/admin/scheduler/selfcheck/run", {}, "at"),
    ("POST", "/admin/scheduler/selfcheck/run", {}, "by"),
    ("POST", "/admin/scheduler/booking_reminders/reset", {}, "by"),
    ("POST", "/admin/scheduler/runs/1/cancel", {}, "by"),
    ("POST", "/admin/scheduler/runs/1/retry", {}, "by"),
    ("POST", "/admin/scheduler/runs/retry", {"since": "2026-01-01T00:00Z"}, "job"),
    ("POST", "/admin/scheduler/runs/retry", {"job": "selfcheck"}, "since"),
    (
        "POST",
        "/admin/scheduler/runs/retry",
        {"job": "selfcheck", "since": "2026-01-01T00:00Z"},
        "until",
    ),
    (
        "POST",
        "/admin/scheduler/runs/retry",
        {"job": "selfcheck", "since": "2026-01-01T00:00Z"},
        "by",
    ),
]


def _changes(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT count(*) FROM schedule_changes WHERE source = 'admin'")
        ).scalar_one()


@pytest.mark.parametrize(("method", "path", "rest", "field"), TEXT_FIELDS)
@pytest.mark.parametrize("text", [SURROGATE, "ok" + SURROGATE, "\udfff\ud800x"])
def test_a_lone_surrogate_is_422_at_its_field(
    client: TestClient,
    engine: Engine,
    method: str,
    path: str,
    rest: dict[str, object],
    field: str,
    text: str,
) -> None:
    # json.dumps writes a lone surrogate as the escape \ud800, as a client would.
    body = json.dumps({**rest, field: text})
    response = client.request(method, path, content=body, headers=JSON)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert _changes(engine) == 0


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/admin/scheduler/runs?job=%ED%A0%80", ["query", "job"]),
        ("/admin/scheduler/runs?job=%FF", ["query", "job"]),
        ("/admin/scheduler/runs?since=2026-01-01%ED%A0%80", ["query", "since"]),
        ("/admin/scheduler/runs?cursor=%C3", ["query", "cursor"]),
        ("/admin/scheduler/%ED%A0%80/pause", ["path", "schedule_id"]),
        ("/admin/scheduler/runs/%FF", ["path", "job_id"]),
    ],
)
def test_text_that_is_not_utf8_in_the_path_or_query_is_422_at_its_field(
    client: TestClient, path: str, location: list[str]
) -> None:
    method = "POST" if path.endswith("/pause") else "GET"
    response = client.request(method, path, headers=HEADERS)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == location


@pytest.mark.parametrize("field", ["cron", "zone", "timeout", "csrf", "back"])
def test_a_form_field_that_is_not_utf8_is_422_at_its_field(
    client: TestClient, engine: Engine, field: str
) -> None:
    response = client.post(
        "/admin/scheduler/ui/booking_reminders/edit",
        content=f"cron=1+*+*+*+*&{field}=%ED%A0%80".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert _changes(engine) == 0


def test_a_refusal_repeats_a_short_prefix_of_the_value(client: TestClient) -> None:
    huge = "1" * 10_000_000
    response = client.patch(
        "/admin/scheduler/booking_reminders",
        json={"cron": huge, "dry_run": True},
        headers=HEADERS,
    )
    assert response.status_code == 422
    assert len(response.content) < 1000
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "cron"]
    assert huge.startswith(error["input"].rstrip("…"))
    # Postgres's own refusal quotes the value: cut as well.
    long_zone = "Asia/" + "x" * 60
    refused = client.patch(
        "/admin/scheduler/booking_reminders",
        json={"zone": long_zone, "dry_run": True},
        headers=HEADERS,
    )
    assert refused.status_code == 422, refused.text
    assert len(refused.json()["detail"][0]["input"]) <= 41


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"at": "2099-01-01T00:00:00"', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b'{"at": "2099-01-01T00:00:00"}', "text/plain"),
        (b"at=2099-01-01", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_not_json_is_400(
    client: TestClient, engine: Engine, content: bytes, content_type: str
) -> None:
    for path in (
        "/admin/scheduler/selfcheck/run",
        "/admin/scheduler/booking_reminders/reset",
        "/admin/scheduler/runs/retry",
    ):
        response = client.post(
            path, content=content, headers={**HEADERS, "Content-Type": content_type}
        )
        assert response.status_code == 400, (path, response.text)
        assert response.json()["detail"].startswith("the body is not JSON")
    patched = client.patch(
        "/admin/scheduler/booking_reminders",
        content=content,
        headers={**HEADERS, "Content-Type": content_type},
    )
    assert patched.status_code == 400
    assert _changes(engine) == 0
