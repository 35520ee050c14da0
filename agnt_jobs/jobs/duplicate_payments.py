"""Stripe objects found made twice for one of our rows, made right: the extra one is
undone through the same protocol as every Stripe write, or, with
``AGNT_STRIPE_DUPLICATE_ACTION=report``, left to a person.

Three lookups can find more than one object made under one row's key: a fee's
payment intents (retry_pending_fees), a monthly invoice (monthly_invoice and its
retries) and a usage batch's invoice item (charge_unbilled_usage). The earliest
made is the row's (``stripe_client`` lists them earliest first; an invoice someone
voided is never the one kept); each extra one is recorded, in the row's own
transaction, as a ``duplicate_payments`` row: the intended call (``action``) under a
deterministic key: an extra payment is refunded (``refund:{payment_intent}``, and
booked as a ``payment`` in the ledger: the money was received), an extra draft
invoice deleted, an extra open one voided (``void:{invoice}``), an extra paid one
has its payment refunded (booked likewise), an extra pending invoice item deleted
(``delete:{item}``). An extra item already on an invoice, or a paid invoice with no
payment intent to refund, has no call that undoes it: ``REPORTED``.

Then each row still to do is handled in one transaction holding its row lock across
the Stripe calls and the recording: look first (the refund made under the key; the
invoice already void or gone; the item gone), else make the call; record the
outcome (a refund with its ``refund`` ledger entry). A crash rolls the recording
back and the next run finds the call made instead of making it again. Stripe
unavailable: the row stays to do for the next run. Stripe refusing: ``REFUSED``,
reported. Every row not done fails the health monitor's ``duplicate_payments``
check and shows on /metrics and the admin page.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from agnt_jobs import logs
from agnt_jobs.clients.errors import ClientError, PermanentError, RetryableError
from agnt_jobs.clients.stripe_client import StripeGateway
from agnt_jobs.jobs import errorlog, ledger
from agnt_jobs.jobs.lost_answers import LostAnswers
from agnt_jobs.scheduler.bodies import RunContext
from agnt_jobs.walk import due_ids

logger = logging.getLogger(__name__)

TO_DO = {"refund": "TO_REFUND", "void": "TO_VOID", "delete": "TO_DELETE"}
DONE = {"refund": "REFUNDED", "void": "VOIDED", "delete": "DELETED"}
OUTCOME = {"REFUNDED": "refunded", "VOIDED": "voided", "DELETED": "deleted"}
# What make_right_due counts, as the jobs' results name them (``duplicates_*``).
DUPLICATE_OUTCOMES = ("refunded", "voided", "deleted", "refused", "failed")

RECORD = sa.text(
    """
    INSERT INTO duplicate_payments (
        kind, action, stripe_object, fee_id, invoice_id, usage_batch_id,
        payment_intent, stripe_customer_id, amount, currency, idempotency_key,
        status, last_error)
    VALUES (:kind, :action, :stripe_object, :fee_id, :invoice_id, :usage_batch_id,
            :payment_intent, :customer, :amount, :currency, :key, :status, :why)
    ON CONFLICT (stripe_object) DO NOTHING
    RETURNING id
    """
)

DUE = sa.text(
    """
    SELECT id, found_at AS due_at FROM duplicate_payments
    WHERE status IN ('TO_REFUND', 'TO_VOID', 'TO_DELETE') AND kind = ANY(:kinds)
      AND (found_at, id) > (:after_at, :after_id)
    ORDER BY found_at, id
    LIMIT :limit
    """
)

LOCK = sa.text(
    """
    SELECT d.*, coalesce(f.venue_id, i.venue_id) AS venue_id
    FROM duplicate_payments d
    LEFT JOIN fee_collections f ON f.id = d.fee_id
    LEFT JOIN monthly_invoices i ON i.id = d.invoice_id
    WHERE d.id = :id AND d.status IN ('TO_REFUND', 'TO_VOID', 'TO_DELETE')
    FOR UPDATE OF d SKIP LOCKED
    """
)

RECORD_OUTCOME = sa.text(
    """
    UPDATE duplicate_payments
    SET status = :status, stripe_refund_id = :refund, last_error = :error,
        refunded_at = CASE WHEN :status = 'REFUNDED' THEN now() END,
        updated_at = now()
    WHERE id = :id
    """
)


@dataclass(frozen=True)
class Extra:
    """One extra object, and the call that undoes it; ``why`` says why that call
    cannot be made, and the object is only reported."""

    stripe_object: str
    amount: int
    action: str  # refund, void, delete
    payment_intent: str | None = None
    why: str | None = None


@dataclass(frozen=True)
class Owner:
    """The row of ours the extra objects were made for."""

    kind: str  # payment, invoice, invoice_item
    job: str
    key: str  # the row's own key, which names it in reports
    stripe_customer_id: str
    currency: str
    venue_id: int | None = None
    fee_id: int | None = None
    invoice_id: int | None = None
    usage_batch_id: int | None = None


def keep_earliest(found: Sequence[dict[str, Any]]) -> tuple[Any, list[Any]]:
    """The object to keep and the extra ones, from a lookup's earliest-first list.
    An invoice already void is never kept while another is not, nor counted extra:
    it bills nothing."""
    live = [obj for obj in found if obj.get("status") != "void"] or list(found)
    return (live[0] if live else None), live[1:]


def extra_invoice(invoice: dict[str, Any]) -> Extra:
    status = invoice.get("status")
    if status == "paid":
        paid = int(invoice.get("amount_paid") or 0)
        intent = invoice.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        if paid and intent:
            return Extra(invoice["id"], paid, "refund", intent)
        return Extra(invoice["id"], paid, "refund", why="paid, no payment to refund")
    action = "delete" if status == "draft" else "void"
    return Extra(invoice["id"], int(invoice.get("amount_due") or 0), action)


def extra_invoice_item(item: dict[str, Any]) -> Extra:
    amount = int(item.get("amount") or 0)
    if item.get("invoice"):
        why = f"already on invoice {item['invoice']}: credit it by hand"
        return Extra(item["id"], amount, "delete", why=why)
    return Extra(item["id"], amount, "delete")


def _key(extra: Extra) -> str:
    return f"{extra.action}:{extra.payment_intent or extra.stripe_object}"


def record(
    connection: Connection,
    owner: Owner,
    extras: list[Extra],
    setting: str,
    report_since: datetime,
) -> int:
    """In the owner row's transaction: each extra object as a call to make
    (``setting`` 'refund') or to report ('report'), money received in the ledger.
    Returns how many were new."""
    found = 0
    for extra in extras:
        if extra.payment_intent:
            received = _entry(
                owner,
                "payment",
                f"{owner.key}:payment:{extra.stripe_object}",
                extra.amount,
                extra.stripe_object,
                f"duplicate payment of {owner.key}",
            )
            ledger.append(connection, [received])
        status = "REPORTED"
        if setting == "refund" and extra.why is None:
            status = TO_DO[extra.action]
        found += (
            connection.execute(
                RECORD,
                {
                    "kind": owner.kind,
                    "action": extra.action,
                    "stripe_object": extra.stripe_object,
                    "fee_id": owner.fee_id,
                    "invoice_id": owner.invoice_id,
                    "usage_batch_id": owner.usage_batch_id,
                    "payment_intent": extra.payment_intent,
                    "customer": owner.stripe_customer_id,
                    "amount": extra.amount,
                    "currency": owner.currency,
                    "key": _key(extra),
                    "status": status,
                    "why": extra.why,
                },
            ).first()
            is not None
        )
    ids = [extra.stripe_object for extra in extras]
    what = "making right" if setting == "refund" else "to make right by hand"
    errorlog.report(
        connection,
        owner.job,
        f"{owner.key}:made more than once",
        f"{owner.kind} {owner.key} was made {1 + len(extras)} times on Stripe: "
        f"{what} {', '.join(ids)}",
        report_since,
        {"kind": owner.kind, "key": owner.key, "extra": ids, "action": setting},
        level="CRITICAL",
    )
    return found


def _entry(
    of: Owner | Row[Any],
    entry_type: str,
    key: str,
    amount: int,
    reference: str,
    description: str,
) -> ledger.Entry:
    """A ledger entry for money an extra object moved, booked on the row it
    duplicates (``of``: the owner, or a ``duplicate_payments`` row as LOCK reads
    it, which carries the same names)."""
    return ledger.Entry(
        idempotency_key=key,
        entry_type=entry_type,
        amount=amount,
        currency=of.currency,
        venue_id=of.venue_id,
        stripe_customer_id=of.stripe_customer_id,
        fee_id=of.fee_id,
        invoice_id=of.invoice_id,
        stripe_reference=reference,
        description=description,
    )


def _unless_gone(read: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """The object ``read`` reads, or None if it was deleted (Stripe answers 404, or
    the object marked deleted)."""
    try:
        obj = read()
    except PermanentError as error:
        if error.status == 404:
            return None
        raise
    return None if obj.get("deleted") else obj


def _gone(read: Callable[[], dict[str, Any]]) -> bool:
    return _unless_gone(read) is None


def _call_or_look(
    lost: LostAnswers,
    call: Callable[[], Any],
    look: Callable[[], Any],
    key: str,
) -> Any:
    """Make the call; if its answer is lost, what the lookup finds it did (a false
    lookup answer raises the call's error: the row stays to do)."""
    try:
        return call()
    except RetryableError:
        _, found = lost.look(look, key)
        if not found:
            raise
        return found


def _refund(stripe: StripeGateway, lost: LostAnswers, row: Row[Any]) -> str:
    key = row.idempotency_key
    refund = stripe.find_refund(row.payment_intent, key)
    if refund is None:
        refund = _call_or_look(
            lost,
            lambda: stripe.refund_payment(
                row.payment_intent,
                row.amount,
                key,
                {"agnt_duplicate_of": str(row.fee_id or row.invoice_id)},
            ),
            lambda: stripe.find_refund(row.payment_intent, key),
            key,
        )
    refund_id: str = refund["id"]
    return refund_id


def _undo_invoice(stripe: StripeGateway, lost: LostAnswers, row: Row[Any]) -> str:
    """Void the extra invoice (delete it while it is a draft): the done status."""
    obj, key = row.stripe_object, row.idempotency_key
    invoice = _unless_gone(lambda: stripe.invoice(obj))
    if invoice is None:
        return "DELETED"
    status = invoice.get("status")
    if status == "void":
        return "VOIDED"
    if status == "paid":
        raise PermanentError(f"invoice {obj} was paid since it was found")
    if status == "draft":
        _call_or_look(
            lost,
            lambda: stripe.delete_invoice(obj),
            lambda: _gone(lambda: stripe.invoice(obj)),
            key,
        )
        return "DELETED"
    _call_or_look(
        lost,
        lambda: stripe.void_invoice(obj, key),
        lambda: stripe.invoice(obj).get("status") == "void",
        key,
    )
    return "VOIDED"


def _delete_item(stripe: StripeGateway, lost: LostAnswers, row: Row[Any]) -> str:
    obj = row.stripe_object
    if not _gone(lambda: stripe.invoice_item(obj)):
        _call_or_look(
            lost,
            lambda: stripe.delete_invoice_item(obj),
            lambda: _gone(lambda: stripe.invoice_item(obj)),
            row.idempotency_key,
        )
    return "DELETED"


def _make_right_one(
    ctx: RunContext, stripe: StripeGateway, lost: LostAnswers, row_id: int
) -> str:
    with ctx.engine.begin() as connection:
        row = connection.execute(LOCK, {"id": row_id}).first()
        if row is None:
            return "skipped"
        refund_id = None
        try:
            if row.action == "refund":
                refund_id = _refund(stripe, lost, row)
                status = "REFUNDED"
            elif row.kind == "invoice":
                status = _undo_invoice(stripe, lost, row)
            else:
                status = _delete_item(stripe, lost, row)
        except PermanentError as refused:
            _record(connection, row, "REFUSED", None, str(refused))
            return "refused"
        except ClientError as error:
            connection.execute(
                sa.text(
                    "UPDATE duplicate_payments SET last_error = :error, "
                    "updated_at = now() WHERE id = :id"
                ),
                {"id": row.id, "error": str(error)},
            )
            return "failed"
        _record(connection, row, status, refund_id, None)
        if refund_id is not None:
            refunded = _entry(
                row,
                "refund",
                row.idempotency_key,
                row.amount,
                refund_id,
                f"refund of duplicate payment {row.payment_intent}",
            )
            ledger.append(connection, [refunded])
    return OUTCOME[status]


def _record(
    connection: Connection,
    row: Row[Any],
    status: str,
    refund: str | None,
    error: str | None,
) -> None:
    connection.execute(
        RECORD_OUTCOME,
        {"id": row.id, "status": status, "refund": refund, "error": error},
    )
    logger.log(
        logging.ERROR if status == "REFUSED" else logging.INFO,
        "duplicate made right" if status != "REFUSED" else "duplicate refused",
        extra=logs.event(
            f"duplicate_{status.lower()}",
            kind=row.kind,
            stripe_object=row.stripe_object,
            fee_id=row.fee_id,
            invoice_id=row.invoice_id,
            usage_batch_id=row.usage_batch_id,
            refund=refund,
            error=error,
        ),
    )


def make_right_due(
    ctx: RunContext,
    stripe: StripeGateway,
    lost: LostAnswers,
    kinds: Sequence[str] = ("payment", "invoice", "invoice_item"),
) -> Counter[str]:
    """Make right every duplicate of these kinds still to do: counts by outcome
    (refunded, voided, deleted, refused, failed, skipped)."""
    counts: Counter[str] = Counter()
    query = DUE.bindparams(kinds=list(kinds))
    for row_id in due_ids(ctx.engine, query, ctx.now, ctx.settings.job_chunk_size):
        counts[_make_right_one(ctx, stripe, lost, row_id)] += 1
    return counts
