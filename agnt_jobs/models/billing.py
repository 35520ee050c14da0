"""Billing: the venue subscription, which several domains read (a venue is active
only with a live subscription), and what the billing jobs keep: monthly invoices,
fee collections and the ledger (metered API usage is in ``models/api_keys.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

# Stripe's subscription statuses, which we mirror.
SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
# A venue with a subscription in one of these is paying (or about to) and active.
LIVE_SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due")


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    stripe_customer_id: Mapped[str] = mapped_column(Text)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text, unique=True)
    status: Mapped[str] = mapped_column(Text)
    current_period_end: Mapped[datetime | None] = timestamp()
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", SUBSCRIPTION_STATUSES),
        # At most one live subscription per venue.
        Index(
            "uq_subscriptions_live_venue_id",
            "venue_id",
            unique=True,
            postgresql_where=text("status IN ('trialing', 'active', 'past_due')"),
        ),
        Index("ix_subscriptions_venue_id", "venue_id"),
    )


# --- invoices, fee collections, the ledger ------------------------------------------

# PENDING: the intended Stripe write is recorded (key, customer, description) but no
# Stripe invoice is known yet; then Stripe's own states once it exists.
INVOICE_STATUSES = ("PENDING", "OPEN", "PAID", "VOID", "UNCOLLECTIBLE")
# Subscriptions billed by monthly_invoice: paying, or owing (past_due still owes the
# month). A trialing venue is not invoiced.
BILLABLE_SUBSCRIPTION_STATUSES = ("active", "past_due")

FEE_STATUSES = ("PENDING", "FAILED", "PAID", "UNCOLLECTIBLE", "REFUNDED")
# Fees retry_pending_fees still tries to collect.
COLLECTABLE_FEE_STATUSES = ("PENDING", "FAILED")

# charge: an amount we asked a customer to pay (an invoice's total); payment: money
# received; refund: money given back; fee: a platform fee accrued (written by the
# backend); usage: metered API usage billed to Stripe as a pending invoice item, which
# Stripe adds to the customer's next invoice (so it is also inside a later charge).
LEDGER_ENTRY_TYPES = ("charge", "payment", "refund", "fee", "usage")


class MonthlyInvoice(Base):
    """One Stripe invoice per venue per WITA month, ever (unique (venue_id, month))."""

    __tablename__ = "monthly_invoices"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    month: Mapped[str] = mapped_column(Text)  # "2026-10", the WITA month billed
    period_start: Mapped[datetime] = timestamp(nullable=False)
    period_end: Mapped[datetime] = timestamp(nullable=False)
    # The intended write, recorded before Stripe is called: who, what, under which
    # key (also the Stripe idempotency key and the invoice's metadata agnt_ref).
    stripe_customer_id: Mapped[str] = mapped_column(Text)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="PENDING")
    stripe_invoice_id: Mapped[str | None] = mapped_column(Text, unique=True)
    amount_due: Mapped[int | None] = mapped_column(BigInteger)
    amount_paid: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text, server_default="IDR")
    payment_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # When a PENDING or OPEN invoice is due for another try (creation failed,
    # payment declined, or a monthly run that crashed left it): retry_pending_fees.
    next_attempt_at: Mapped[datetime | None] = timestamp()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime | None] = timestamp()
    paid_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", INVOICE_STATUSES),
        UniqueConstraint("venue_id", "month"),
        # monthly_invoice's work list: the month's invoices not settled yet.
        Index(
            "ix_monthly_invoices_unsettled",
            "month",
            postgresql_where=text("status IN ('PENDING', 'OPEN')"),
        ),
        # retry_pending_fees' walk of the invoices due for another try.
        Index(
            "ix_monthly_invoices_retry_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status IN ('PENDING', 'OPEN')"),
        ),
    )


class FeeCollection(Base):
    """A platform fee the backend charges a venue's card off-session; retried by
    retry_pending_fees until PAID or UNCOLLECTIBLE."""

    __tablename__ = "fee_collections"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    # The booking the fee is for, if any; kept (anonymised) when it goes.
    booking_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("bookings.id", ondelete="SET NULL")
    )
    stripe_customer_id: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(Text, server_default="IDR")
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_retry_at: Mapped[datetime] = defaults_to_now()
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime] = defaults_to_now()
    paid_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", FEE_STATUSES),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # retry_pending_fees' scan: only fees still to collect, in due order.
        Index(
            "ix_fee_collections_due",
            "next_retry_at",
            "id",
            postgresql_where=text("status IN ('PENDING', 'FAILED')"),
        ),
        # reconcile_fee_status: fees changed recently.
        Index("ix_fee_collections_updated_at", "updated_at"),
        Index("ix_fee_collections_venue_id", "venue_id"),
        Index("ix_fee_collections_booking_id", "booking_id"),
    )


class LedgerEntry(Base):
    """The truth for money: append-only (a trigger refuses UPDATE and DELETE, except
    the user_id -> NULL of a user purge), one row per fact, unique per key."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    created_at: Mapped[datetime] = defaults_to_now()
    entry_type: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units, always > 0
    currency: Mapped[str] = mapped_column(Text, server_default="IDR")
    # Derived from what the entry records ("fee:12:payment"): recording it twice
    # records it once.
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    venue_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("venues.id"))
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    fee_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("fee_collections.id")
    )
    invoice_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("monthly_invoices.id")
    )
    usage_batch_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("usage_batches.id")
    )
    # The Stripe object the money moved through (pi_..., in_..., ii_..., re_...).
    stripe_reference: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        one_of("entry_type", LEDGER_ENTRY_TYPES),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index(
            "ix_ledger_entries_fee_id",
            "fee_id",
            postgresql_where=text("fee_id IS NOT NULL"),
        ),
        Index(
            "ix_ledger_entries_invoice_id",
            "invoice_id",
            postgresql_where=text("invoice_id IS NOT NULL"),
        ),
        Index(
            "ix_ledger_entries_usage_batch_id",
            "usage_batch_id",
            postgresql_where=text("usage_batch_id IS NOT NULL"),
        ),
        Index("ix_ledger_entries_created_at", "created_at"),
        Index("ix_ledger_entries_venue_id", "venue_id"),
        Index("ix_ledger_entries_user_id", "user_id"),
    )


# TO_REFUND / TO_VOID / TO_DELETE: the job that found it makes it right;
# REFUNDED / VOIDED / DELETED: done; REPORTED: the AGNT_STRIPE_DUPLICATE_ACTION=report
# setting (or an extra object no call can undo) left it to a person; REFUSED: Stripe
# refused the call, a person must look.
DUPLICATE_STATUSES = (
    "TO_REFUND",
    "REFUNDED",
    "TO_VOID",
    "VOIDED",
    "TO_DELETE",
    "DELETED",
    "REPORTED",
    "REFUSED",
)
DUPLICATE_DONE = ("REFUNDED", "VOIDED", "DELETED")
DUPLICATE_KINDS = ("payment", "invoice", "invoice_item")
DUPLICATE_ACTIONS = ("refund", "void", "delete")


class DuplicatePayment(Base):
    """A Stripe object found made twice for one of our rows (a fee's payment, a
    monthly invoice, a usage batch's invoice item): the extra one, and what makes
    it right (``action``). The row is the intended call, recorded before Stripe is
    asked, under a deterministic key (``refund:{payment_intent}``,
    ``void:{invoice}``, ``delete:{object}``)."""

    __tablename__ = "duplicate_payments"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    stripe_object: Mapped[str] = mapped_column(Text, unique=True)
    fee_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("fee_collections.id")
    )
    invoice_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("monthly_invoices.id")
    )
    usage_batch_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("usage_batches.id")
    )
    # The payment to refund (a fee's extra payment, a paid extra invoice's).
    payment_intent: Mapped[str | None] = mapped_column(Text, unique=True)
    stripe_customer_id: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    status: Mapped[str] = mapped_column(Text)
    stripe_refund_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    found_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime] = defaults_to_now()
    refunded_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", DUPLICATE_STATUSES),
        one_of("kind", DUPLICATE_KINDS),
        one_of("action", DUPLICATE_ACTIONS),
        CheckConstraint(
            "(kind = 'payment' AND fee_id IS NOT NULL)"
            " OR (kind = 'invoice' AND invoice_id IS NOT NULL)"
            " OR (kind = 'invoice_item' AND usage_batch_id IS NOT NULL)",
            name="duplicates_one_row",
        ),
        # An extra invoice may be for nothing (paid, it is then only reported).
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        Index("ix_duplicate_payments_fee_id", "fee_id"),
        # The refunds still to make, and what the health check counts.
        Index(
            "ix_duplicate_payments_open",
            "id",
            postgresql_where=text("status NOT IN ('REFUNDED', 'VOIDED', 'DELETED')"),
        ),
    )
