"""Appending to the ledger, the truth for money: one entry per fact, keyed by what it
records (``fee:12:payment``), so a job that records the same fact twice records it
once. Entries are never updated or deleted (a database trigger enforces it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

INSERT_ENTRY = sa.text(
    """
    INSERT INTO ledger_entries (
        idempotency_key, entry_type, amount, currency, venue_id, user_id,
        stripe_customer_id, fee_id, invoice_id, usage_batch_id, stripe_reference,
        description)
    VALUES (
        :idempotency_key, :entry_type, :amount, :currency, :venue_id, :user_id,
        :stripe_customer_id, :fee_id, :invoice_id, :usage_batch_id, :stripe_reference,
        :description)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
    """
)


@dataclass(frozen=True)
class Entry:
    idempotency_key: str
    entry_type: str  # charge, payment, refund, fee, usage
    amount: int  # minor units, > 0
    currency: str
    venue_id: int | None = None
    user_id: int | None = None
    stripe_customer_id: str | None = None
    fee_id: int | None = None
    invoice_id: int | None = None
    usage_batch_id: int | None = None
    stripe_reference: str | None = None
    description: str | None = None


def append(connection: Connection, entries: Iterable[Entry]) -> int:
    """Append entries not already recorded under their key; return how many were."""
    written = 0
    for entry in entries:
        written += connection.execute(INSERT_ENTRY, asdict(entry)).first() is not None
    return written
