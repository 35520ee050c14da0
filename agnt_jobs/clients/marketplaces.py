"""Shopee, Tokopedia and Lazada: the current price of one product, as each
marketplace's own product API answers it, parsed into one ``Price``.

One client per marketplace, each with its base URL from settings, its own
connection pool and its own rate limiter (requests per second to that host), so a
slow or failing marketplace never takes capacity from the others. Errors are the
common ones: ``RetryableError`` (down, slow, 5xx, 429: try again next run) and
``PermanentError`` (the product is gone, the reference is malformed, or the answer
is not the shape we know: retrying the same request will not help).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

from agnt_jobs.clients.errors import PermanentError
from agnt_jobs.clients.http import HttpClient, build_client, request
from agnt_jobs.settings import Settings

# Shopee's API gives prices as integers in 1/100000 of the currency unit.
SHOPEE_PRICE_SCALE = Decimal(100_000)


@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str
    title: str | None = None
    in_stock: bool = True


class RateLimiter:
    """At most ``per_second`` request starts per second, across threads: each caller
    is given the next free slot and sleeps until it (outside the lock)."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class MarketplaceClient(HttpClient):
    """What the watcher job sees of any marketplace: ``fetch_price(product_ref)``."""

    name: ClassVar[str]
    currency: ClassVar[str] = "IDR"

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        rate_per_second: float = 2.0,
        max_connections: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = build_client(
            base_url,
            timeout,
            {"Accept": "application/json"},
            transport,
            max_connections=max_connections,
        )
        self._limiter = RateLimiter(rate_per_second)

    def fetch_price(self, product_ref: str) -> Price:
        self._limiter.acquire()
        response = self._request(product_ref)
        try:
            return self.parse(response.json())
        except PermanentError:
            raise
        except (
            KeyError,
            IndexError,
            TypeError,
            ValueError,
            InvalidOperation,
            StopIteration,
        ) as error:
            raise PermanentError(
                f"{self.name} {product_ref}: unexpected response "
                f"({type(error).__name__}: {error})"
            ) from error

    def _request(self, product_ref: str) -> httpx.Response:
        raise NotImplementedError

    @classmethod
    def parse(cls, body: Any) -> Price:
        raise NotImplementedError


class Shopee(MarketplaceClient):
    """``GET /api/v4/item/get?shopid=&itemid=``; product_ref is ``"shopid.itemid"``.

    ``{"error": null, "data": {"name": ..., "currency": "IDR", "price": 14900000000,
    "price_before_discount": ..., "stock": 12}}``; a missing item answers 200 with
    ``data`` null and an ``error`` code.
    """

    name = "shopee"

    def _request(self, product_ref: str) -> httpx.Response:
        shop_id, _, item_id = product_ref.partition(".")
        if not (shop_id.isdigit() and item_id.isdigit()):
            raise PermanentError(f"shopee: bad product ref {product_ref!r}")
        return request(
            self._client,
            "GET",
            "/api/v4/item/get",
            params={"shopid": shop_id, "itemid": item_id},
        )

    @classmethod
    def parse(cls, body: Any) -> Price:
        item = body.get("data")
        if not item:
            raise PermanentError(f"shopee: item not found (error {body.get('error')})")
        return Price(
            amount=Decimal(item["price"]) / SHOPEE_PRICE_SCALE,
            currency=item.get("currency") or cls.currency,
            title=item.get("name"),
            in_stock=int(item.get("stock") or 0) > 0,
        )


class Tokopedia(MarketplaceClient):
    """Tokopedia's GraphQL gateway, ``POST /graphql/PDPGetLayoutQuery`` (a batch of
    one operation); product_ref is ``"shop-domain/product-key"``.

    The price sits in the ``product_content`` component: ``price.value``, or
    ``campaign.discountedPrice`` while a campaign is active.
    """

    name = "tokopedia"
    QUERY = (
        "query PDPGetLayoutQuery($shopDomain: String, $productKey: String) {"
        " pdpGetLayout(shopDomain: $shopDomain, productKey: $productKey) {"
        " basicInfo { id status } components { name data { ... on pdpDataProduct"
        "Content { name price { value currency } campaign { isActive"
        " discountedPrice originalPrice } stock { value } } } } } }"
    )

    def _request(self, product_ref: str) -> httpx.Response:
        shop_domain, _, product_key = product_ref.partition("/")
        if not shop_domain or not product_key:
            raise PermanentError(f"tokopedia: bad product ref {product_ref!r}")
        operation = {
            "operationName": "PDPGetLayoutQuery",
            "variables": {"shopDomain": shop_domain, "productKey": product_key},
            "query": self.QUERY,
        }
        return request(
            self._client, "POST", "/graphql/PDPGetLayoutQuery", json=[operation]
        )

    @classmethod
    def parse(cls, body: Any) -> Price:
        result = body[0]
        layout = (result.get("data") or {}).get("pdpGetLayout")
        if not layout:
            errors = [e.get("message") for e in result.get("errors") or []]
            raise PermanentError(f"tokopedia: product not found {errors}")
        content = next(
            c for c in layout["components"] if c["name"] == "product_content"
        )
        product = content["data"][0]
        campaign = product.get("campaign") or {}
        amount = (
            campaign["discountedPrice"]
            if campaign.get("isActive")
            else product["price"]["value"]
        )
        stock = (product.get("stock") or {}).get("value")
        return Price(
            amount=Decimal(str(amount)),
            currency=product["price"].get("currency") or cls.currency,
            title=product.get("name"),
            in_stock=stock is None or int(stock) > 0,
        )


class Lazada(MarketplaceClient):
    """``GET /pdp/api/item?itemId=``; product_ref is the item id.

    ``{"success": true, "data": {"root": {"fields": {"product": {"title": ...},
    "skuInfos": {"0": {"price": {"salePrice": {"value": 149000, "text": "Rp149.000"},
    "originalPrice": {...}}, "stock": 5}}}}}}``; sku "0" is the default variant.
    A missing item answers ``{"success": false, "ret": ["FAIL_SYS_ITEM_NOT_FOUND"]}``.
    """

    name = "lazada"

    def _request(self, product_ref: str) -> httpx.Response:
        if not product_ref.isdigit():
            raise PermanentError(f"lazada: bad product ref {product_ref!r}")
        return request(
            self._client, "GET", "/pdp/api/item", params={"itemId": product_ref}
        )

    @classmethod
    def parse(cls, body: Any) -> Price:
        if not body.get("success"):
            raise PermanentError(f"lazada: item not available {body.get('ret')}")
        fields = body["data"]["root"]["fields"]
        sku = fields["skuInfos"]["0"]
        price = sku["price"].get("salePrice") or sku["price"]["originalPrice"]
        return Price(
            amount=Decimal(str(price["value"])),
            currency=fields.get("currency") or cls.currency,
            title=(fields.get("product") or {}).get("title"),
            in_stock=int(sku.get("stock") or 0) > 0,
        )


CLIENTS: dict[str, type[MarketplaceClient]] = {
    client.name: client for client in (Shopee, Tokopedia, Lazada)
}


def from_settings(settings: Settings) -> dict[str, MarketplaceClient]:
    """One client per marketplace, keyed by the name watchers store."""
    urls = {
        "shopee": settings.shopee_base_url,
        "tokopedia": settings.tokopedia_base_url,
        "lazada": settings.lazada_base_url,
    }
    return {
        name: CLIENTS[name](
            url,
            settings.http_timeout_seconds,
            settings.marketplace_rate_per_second,
            settings.marketplace_concurrency,
        )
        for name, url in urls.items()
    }
