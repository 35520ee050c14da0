"""Builders for billing tests: the Stripe side (customers with cards, plans,
subscriptions in localstripe, through the official library) and our side (venues,
subscription rows, fees, API keys, usage events), plus what a test reads back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from agnt_jobs.scheduler.bodies import JobBody, JobResult, RunContext
from agnt_jobs.settings import Settings

# Re-exported for the billing tests: the cards they use and the plan amount.
from agnt_jobs.standins.localstripe import API_KEY, DECLINED_CARD, StripeObjects
from agnt_jobs.standins.localstripe import GOOD_CARD as GOOD_CARD
from agnt_jobs.standins.localstripe import PLAN_AMOUNT as PLAN_AMOUNT
from tests.support import rows as rows_
from tests.support.rows import insert as insert
from tests.support.rows import rows as rows
from tests.support.rows import scalar as scalar

DECLINED_ON_CHARGE = DECLINED_CARD  # attaches, then every charge is declined


class StripeWorld(StripeObjects):
    """The Stripe side of a test, made and inspected directly in localstripe."""

    def __init__(self, url: str) -> None:
        super().__init__(url, API_KEY)

    def cancel(self, subscription: str) -> None:
        self.v1.subscriptions.cancel(subscription)

    def _all(self, list_call: Any, **params: Any) -> list[dict[str, Any]]:
        return [
            obj.to_dict()
            for obj in list_call(params={**params, "limit": 100}).auto_paging_iter()
        ]

    def invoices(self, customer: str, ref: str | None = None) -> list[dict[str, Any]]:
        found = self._all(self.v1.invoices.list, customer=customer)
        if ref is None:
            return found
        return [i for i in found if f"[{ref}]" in (i.get("description") or "")]

    def charges(self, customer: str) -> list[dict[str, Any]]:
        return self._all(self.v1.charges.list, customer=customer)

    def pending_items(self, customer: str) -> list[dict[str, Any]]:
        return self._all(self.v1.invoice_items.list, customer=customer)

    def invoiced_lines(self, customer: str, ref: str) -> list[dict[str, Any]]:
        lines = []
        for invoice in self.invoices(customer):
            lines += [
                line
                for line in invoice["lines"]["data"]
                if (line.get("metadata") or {}).get("agnt_ref") == ref
            ]
        return lines


def run(
    body: JobBody,
    settings: Settings,
    engine: Engine,
    tick: datetime,
    now: datetime | None = None,
) -> JobResult:
    return body(
        RunContext(engine=engine, settings=settings, tick=tick, now=now or tick)
    )


def venue(connection: Connection, name: str = "Warung Senja") -> int:
    return rows_.venue(connection, name=name)


def user(connection: Connection) -> int:
    return rows_.user(connection, channel_address="+62811")


def subscription_row(
    connection: Connection,
    venue_id: int,
    customer: str,
    subscription_id: str | None,
    status: str = "active",
    period_end: datetime | None = None,
    created_at: datetime | None = None,
) -> int:
    values: dict[str, Any] = {
        "venue_id": venue_id,
        "stripe_customer_id": customer,
        "stripe_subscription_id": subscription_id,
        "status": status,
        "current_period_end": period_end,
    }
    if created_at is not None:
        values["created_at"] = created_at
    return insert(connection, "subscriptions", **values)


def fee(
    connection: Connection,
    venue_id: int,
    customer: str,
    amount: int = 1_500_000,
    **values: Any,
) -> int:
    return insert(
        connection,
        "fee_collections",
        venue_id=venue_id,
        stripe_customer_id=customer,
        amount=amount,
        **values,
    )


def api_key(connection: Connection, customer: str | None, **values: Any) -> int:
    return insert(
        connection,
        "api_keys",
        key_hash=uuid.uuid4().hex,
        stripe_customer_id=customer,
        **values,
    )


def usage(
    connection: Connection, key_id: int, occurred_at: datetime, quantity: int = 1
) -> int:
    return insert(
        connection,
        "api_key_usage_events",
        api_key_id=key_id,
        occurred_at=occurred_at,
        quantity=quantity,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Crash(Exception):
    """Stands for the process dying: raised after a result was written, before the
    transaction commits, so the transaction rolls back as a dead process's would."""


def crash_once(monkeypatch: Any, module: Any, name: str) -> None:
    """Make ``module.name`` (a function recording a Stripe result) do its writes and
    then crash, once."""
    original = getattr(module, name)
    crashed = []

    def recording_then_crashing(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not crashed:
            crashed.append(True)
            raise Crash(f"crash after {name}")
        return result

    monkeypatch.setattr(module, name, recording_then_crashing)


def unreachable(settings: Settings) -> Settings:
    """The same settings with Stripe at an address where nothing listens."""
    return settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:9"})
