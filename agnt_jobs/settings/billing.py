"""Stripe, and how fees, invoices and metered API usage are billed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class BillingSettings(BaseModel):
    stripe_api_key: SecretStr | None = Field(
        default=None,
        description="Stripe secret key (sk_...). Required by every billing job.",
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com",
        description="Base URL of the Stripe API; tests and the demo point it at "
        "localstripe.",
    )
    stripe_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one Stripe call."
    )
    stripe_max_network_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries, inside the Stripe library, of a read (retrieve, list) "
        "that failed on the network. Writes are never retried by the library: a "
        "write whose answer was lost is looked up in Stripe before it is repeated.",
    )
    stripe_reconcile_seconds: float = Field(
        default=120.0,
        ge=0,
        description="How long one run keeps looking in Stripe (once a second) for "
        "the objects of writes whose answer was lost, before it ends failed with "
        "'Stripe reconciliation pending'.",
    )
    stripe_duplicate_action: Literal["refund", "report"] = Field(
        default="refund",
        description="What is done with a Stripe object found made twice for one "
        "row (a fee's payment, a monthly invoice, a usage invoice item): 'refund' "
        "undoes the extra one (refunds a payment, voids or deletes an invoice, "
        "deletes an item) and reports it; 'report' only reports it, for a person.",
    )
    stripe_lookup_max_objects: int = Field(
        default=2000,
        ge=100,
        description="Most Stripe objects one crash-recovery lookup reads; past it "
        "the write is postponed rather than made blind.",
    )
    billing_currency: str = Field(
        default="IDR",
        pattern=r"^[A-Z]{3}$",
        description="ISO code of every amount we bill; amounts are in its minor "
        "units, as Stripe counts them.",
    )
    fee_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Charge attempts of a fee before it is UNCOLLECTIBLE (and "
        "dead-lettered).",
    )
    fee_backoff_base_seconds: float = Field(
        default=3600.0, gt=0, description="First fee retry delay; doubles per attempt."
    )
    fee_backoff_max_seconds: float = Field(
        default=86400.0, gt=0, description="Ceiling of the fee retry delay."
    )
    fee_reconcile_window_hours: float = Field(
        default=168.0,
        gt=0,
        description="reconcile_fee_status checks the fees changed, or given "
        "ledger entries, within this window.",
    )
    api_usage_unit_price: int = Field(
        default=5000,
        ge=0,
        description="Price of one metered API query, in minor units of "
        "AGNT_BILLING_CURRENCY (5000 = Rp 50).",
    )
