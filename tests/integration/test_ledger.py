"""The ledger is append-only: the database itself refuses to change or remove an
entry, except anonymising it when its user is purged."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from agnt_jobs.jobs import ledger
from tests.support.billing_data import scalar, user


def _entry(user_id: int | None = None) -> ledger.Entry:
    return ledger.Entry("test:1:payment", "payment", 1000, "IDR", user_id=user_id)


def test_an_entry_is_recorded_once_under_its_key(engine: Engine) -> None:
    with engine.begin() as connection:
        assert ledger.append(connection, [_entry(), _entry()]) == 1
        assert ledger.append(connection, [_entry()]) == 0
    assert scalar(engine, "SELECT count(*) FROM ledger_entries") == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = 1",
        "UPDATE ledger_entries SET user_id = NULL, amount = 1",
        "DELETE FROM ledger_entries",
    ],
)
def test_entries_cannot_be_changed_or_removed(engine: Engine, statement: str) -> None:
    with engine.begin() as connection:
        ledger.append(connection, [_entry()])
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text(statement))
    assert scalar(engine, "SELECT amount FROM ledger_entries") == 1000


def test_purging_the_user_keeps_the_entry_anonymised(engine: Engine) -> None:
    with engine.begin() as connection:
        user_id = user(connection)
        ledger.append(connection, [_entry(user_id)])
        connection.execute(sa.text("DELETE FROM users WHERE id = :u"), {"u": user_id})
    assert scalar(engine, "SELECT user_id FROM ledger_entries") is None
    assert scalar(engine, "SELECT amount FROM ledger_entries") == 1000
