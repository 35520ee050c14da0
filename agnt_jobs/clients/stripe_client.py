"""Stripe, as the billing jobs use it: a thin wrapper over the official library's
``stripe.StripeClient`` (one instance per caller, no global state).

Every write carries an idempotency key derived from our own ids and puts that key in
the object's ``metadata["agnt_ref"]`` (with our ids beside it), so a crashed attempt
can be found again: the ``find_*`` lookups list the customer's objects and match
the key. A write is sent once: the library never re-sends it (its retries are for
reads only), because a re-send made inside one call never passes through a lookup.
A write whose answer was lost is repeated only by the caller, after a lookup, under
the same key. Real Stripe also deduplicates on the key for 24 hours; the lookups
make recovery hold without that (localstripe, the test server, ignores keys).

Errors come out as ``agnt_jobs.clients.errors`` classes: ``RetryableError``
(network, 5xx, 409, 429), ``CardDeclinedError`` (the customer's card or bank said
no: retry on the fee schedule), ``PermanentError`` (the request itself is wrong,
404 included). Results are plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import stripe

from agnt_jobs import tracing
from agnt_jobs.clients.errors import ClientError, PermanentError, RetryableError
from agnt_jobs.settings import ConfigError, Settings

REF = "agnt_ref"
StripeDict = dict[str, Any]


class CardDeclinedError(ClientError):
    """The payment was refused by the card or bank (``code`` says why)."""

    retryable = False

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, status=402)
        self.code = code


def classify(error: stripe.StripeError) -> ClientError:
    """Map a Stripe library error to retryable / card declined / permanent."""
    status = error.http_status
    message = f"stripe: {type(error).__name__}: {error.user_message or error}"
    if isinstance(error, stripe.CardError):
        return CardDeclinedError(message, code=error.code)
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return RetryableError(message, status=status)
    # The attempt's key was used before with other parameters (the saved card
    # changed between a lost attempt and its repeat): the first request may have
    # been made, so look it up; the key frees up after Stripe's 24 hours.
    if isinstance(error, stripe.IdempotencyError):
        return RetryableError(message, status=status)
    # 409: a request with the same idempotency key is still in flight.
    if status is None or status >= 500 or status in (408, 409, 429):
        return RetryableError(message, status=status)
    return PermanentError(message, status=status)


def ref_tag(ref: str) -> str:
    """How a reference is written into a description: localstripe drops an
    invoice's metadata at creation, so invoices carry their key in the text too."""
    return f"[{ref}]"


def _matches(obj: StripeDict, ref: str) -> bool:
    metadata = obj.get("metadata") or {}
    return metadata.get(REF) == ref or ref_tag(ref) in (obj.get("description") or "")


def _epoch(instant: datetime) -> int:
    return int(instant.timestamp())


def _earliest_first(objects: list[StripeDict]) -> list[StripeDict]:
    """Objects made under one key, the one to keep first: the earliest made (ties,
    within Stripe's one-second ``created``, by id), whichever order Stripe lists."""
    return sorted(objects, key=lambda obj: (obj.get("created") or 0, obj["id"]))


class StripeGateway:
    """The calls the billing jobs make, each mapped to our error classes."""

    def __init__(
        self,
        api_key: str,
        api_base: str = "https://api.stripe.com",
        timeout: float = 30.0,
        max_network_retries: int = 2,
        lookup_max_objects: int = 2000,
    ) -> None:
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=stripe.RequestsClient(timeout=timeout),
            # Reads only: every write overrides it with 0 (``_write_options``).
            max_network_retries=max_network_retries,
        )
        self._v1 = self._client.v1
        self._lookup_max = lookup_max_objects

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeGateway:
        if settings.stripe_api_key is None:
            raise ConfigError(
                "AGNT_STRIPE_API_KEY is not set: set it to the Stripe secret key "
                "(sk_...) to run billing jobs"
            )
        return cls(
            settings.stripe_api_key.get_secret_value(),
            settings.stripe_api_base,
            settings.stripe_timeout_seconds,
            settings.stripe_max_network_retries,
            settings.stripe_lookup_max_objects,
        )

    def _call(
        self, func: Callable[..., stripe.StripeObject], *args: Any, **kwargs: Any
    ) -> StripeDict:
        """One call to Stripe; with traces on, a span, a child of the run's (named
        by the library's service and method, ``stripe InvoiceService.pay``)."""
        operation = f"{type(getattr(func, '__self__', func)).__name__}.{func.__name__}"
        with tracing.span(
            f"stripe {operation}", {"agnt.stripe.operation": operation}, kind="CLIENT"
        ) as traced:
            try:
                return func(*args, **kwargs).to_dict()
            except stripe.StripeError as error:
                traced.set_attribute("http.response.status_code", error.http_status)
                traced.set_attribute("agnt.stripe.error_code", error.code)
                raise classify(error) from error

    @staticmethod
    def _write_options(idempotency_key: str) -> dict[str, Any]:
        """A write: sent once under our key. A library re-send after a timeout is
        a second request that Stripe, once it answers again, may serve as well
        (only its own key check stands between them and a second object)."""
        return {
            "idempotency_key": f"agnt:{idempotency_key}",
            "max_network_retries": 0,
        }

    # --- reads -------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> StripeDict:
        return self._call(self._v1.subscriptions.retrieve, subscription_id)

    def invoice(self, invoice_id: str) -> StripeDict:
        return self._call(self._v1.invoices.retrieve, invoice_id)

    def default_payment_method(self, customer_id: str) -> str | None:
        """The customer's default card for off-session charges, if any."""
        customer = self._call(self._v1.customers.retrieve, customer_id)
        settings = customer.get("invoice_settings") or {}
        method = settings.get("default_payment_method") or customer.get(
            "default_source"
        )
        if isinstance(method, dict):
            method = method.get("id")
        return method

    # --- writes: each with an idempotency key and our ids in metadata -------------

    def create_invoice(
        self,
        customer: str,
        subscription: str | None,
        description: str,
        ref: str,
        metadata: dict[str, str],
    ) -> StripeDict:
        params: dict[str, Any] = {
            "customer": customer,
            "description": description,
            "metadata": {REF: ref, **metadata},
            # Usage invoice items pending for the customer belong on this invoice.
            "pending_invoice_items_behavior": "include",
        }
        if subscription:
            params["subscription"] = subscription
        return self._call(
            self._v1.invoices.create, params=params, options=self._write_options(ref)
        )

    def pay_invoice(self, invoice_id: str, idempotency_key: str) -> StripeDict:
        return self._call(
            self._v1.invoices.pay,
            invoice_id,
            options=self._write_options(idempotency_key),
        )

    def create_invoice_item(
        self,
        customer: str,
        amount: int,
        currency: str,
        description: str,
        ref: str,
        metadata: dict[str, str],
    ) -> StripeDict:
        return self._call(
            self._v1.invoice_items.create,
            params={
                "customer": customer,
                "amount": amount,
                "currency": currency.lower(),
                "description": description,
                "metadata": {REF: ref, **metadata},
            },
            options=self._write_options(ref),
        )

    def charge_off_session(
        self,
        customer: str,
        payment_method: str,
        amount: int,
        currency: str,
        ref: str,
        metadata: dict[str, str],
    ) -> StripeDict:
        """Create and confirm a payment intent on the saved card; the payment
        intent (succeeded, processing, requires_action...) or CardDeclinedError.
        No ``description``: localstripe refuses it on payment intents; what the
        charge is for is in the metadata."""
        return self._call(
            self._v1.payment_intents.create,
            params={
                "customer": customer,
                "payment_method": payment_method,
                "amount": amount,
                "currency": currency.lower(),
                "confirm": True,
                "off_session": True,
                "metadata": {REF: ref, **metadata},
            },
            options=self._write_options(ref),
        )

    def refund_payment(
        self, payment_intent: str, amount: int, ref: str, metadata: dict[str, str]
    ) -> StripeDict:
        """Refund ``amount`` of a succeeded payment intent."""
        return self._call(
            self._v1.refunds.create,
            params={
                "payment_intent": payment_intent,
                "amount": amount,
                "metadata": {REF: ref, **metadata},
            },
            options=self._write_options(ref),
        )

    # --- undoing an object found made twice -----------------------------------------
    # A delete needs no key: deleting what is gone is refused (404), which the
    # caller reads as done.

    def void_invoice(self, invoice_id: str, idempotency_key: str) -> StripeDict:
        return self._call(
            self._v1.invoices.void_invoice,
            invoice_id,
            options=self._write_options(idempotency_key),
        )

    def delete_invoice(self, invoice_id: str) -> StripeDict:
        """Delete a draft invoice (Stripe voids only finalized ones)."""
        return self._call(
            self._v1.invoices.delete, invoice_id, options={"max_network_retries": 0}
        )

    def delete_invoice_item(self, item_id: str) -> StripeDict:
        return self._call(
            self._v1.invoice_items.delete, item_id, options={"max_network_retries": 0}
        )

    def invoice_item(self, item_id: str) -> StripeDict:
        return self._call(self._v1.invoice_items.retrieve, item_id)

    # --- lookups: what an earlier, crashed attempt may have made ------------------

    def find_refund(self, payment_intent: str, ref: str) -> StripeDict | None:
        for refund in self._pages(
            self._v1.refunds.list, {"payment_intent": payment_intent}
        ):
            if _matches(refund, ref):
                return refund
        return None

    def _pages(
        self, list_call: Callable[..., Any], params: dict[str, Any]
    ) -> Iterator[StripeDict]:
        """Every object of a list call, page by page, up to the lookup limit. Past
        it we cannot prove an object is absent, so the caller must not write."""
        seen = 0
        cursor: str | None = None
        while True:
            page_params = {**params, "limit": 100}
            if cursor:
                page_params["starting_after"] = cursor
            page = self._call(list_call, params=page_params)
            for obj in page.get("data", []):
                seen += 1
                if seen > self._lookup_max:
                    raise RetryableError(
                        f"stripe lookup read more than {self._lookup_max} objects "
                        f"({params}); not writing blind"
                    )
                yield obj
            if not page.get("has_more") or not page.get("data"):
                return
            cursor = page["data"][-1]["id"]

    def find_invoices(self, customer: str, ref: str) -> list[StripeDict]:
        """Every invoice made under ``ref``, the one to keep first (more than one
        only if a write was made twice)."""
        return _earliest_first(
            [
                invoice
                for invoice in self._pages(
                    self._v1.invoices.list, {"customer": customer}
                )
                if _matches(invoice, ref)
            ]
        )

    def find_invoice(self, customer: str, ref: str) -> StripeDict | None:
        return next(iter(self.find_invoices(customer, ref)), None)

    def find_invoice_items(
        self, customer: str, ref: str, since: datetime
    ) -> list[StripeDict]:
        """Every invoice item made under ``ref``, the one to keep first: among the
        customer's pending invoice items, and among the lines of invoices made
        since ``since`` (localstripe lists only items not yet invoiced; an invoice
        may have swept ours in; those carry ``invoice``)."""
        items = {
            item["id"]: item
            for item in self._pages(self._v1.invoice_items.list, {"customer": customer})
            if _matches(item, ref)
        }
        for invoice in self._pages(self._v1.invoices.list, {"customer": customer}):
            if invoice.get("created", 0) < _epoch(since):
                continue
            for line in self._pages(
                lambda params, _id=invoice["id"]: self._v1.invoices.line_items.list(
                    _id, params=params
                ),
                {},
            ):
                if _matches(line, ref):
                    item_id = line.get("invoice_item") or line.get("id")
                    items.setdefault(
                        item_id, {**line, "id": item_id, "invoice": invoice["id"]}
                    )
        return _earliest_first(list(items.values()))

    def find_invoice_item(
        self, customer: str, ref: str, since: datetime
    ) -> StripeDict | None:
        return next(iter(self.find_invoice_items(customer, ref, since)), None)

    def find_payment_intents(
        self, customer: str, key: str, value: str, since: datetime
    ) -> list[StripeDict]:
        """Payment intents of ``customer`` since ``since`` whose metadata[key] is
        ``value``, found through the customer's charges (localstripe cannot list
        payment intents by customer). An intent that never reached a charge moved
        no money, so it does not matter here."""
        intents: dict[str, StripeDict] = {}
        params = {
            "customer": customer,
            "created": {"gt": _epoch(since) - 1},
            "expand": ["data.payment_intent"],
        }
        for charge in self._pages(self._v1.charges.list, params):
            intent = charge.get("payment_intent")
            if not isinstance(intent, dict):
                continue
            if (intent.get("metadata") or {}).get(key) == value:
                intents[intent["id"]] = intent
        return list(intents.values())
