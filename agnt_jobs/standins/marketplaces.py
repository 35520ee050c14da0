"""The three marketplaces' product APIs as the clients in
``agnt_jobs/clients/marketplaces.py`` see them: where a product is asked for, how
its ref is read from the request, and the answer in each marketplace's own shape,
for a known product (its price) or an unknown one (no price). Both transports of
the stand-ins answer with these: the tests' threads (``ops.FakeShopee``...) from
a table of prices, the demo's and the bench's process (``peer_server``) with
``derived_price``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Marketplace:
    name: str
    path: str
    # The product ref from the request's query parameters and body.
    ref: Callable[[dict[str, str], bytes], str]
    # (status, JSON body) for a product at a price; None: an unknown product.
    answer: Callable[[str, Decimal | None], tuple[int, Any]]


def derived_price(ref: str) -> Decimal:
    """A product's price in rupiah from its item id (the ref's last part, after
    any shop): 50,000 to 149,900, the same on every run."""
    item = re.split(r"[./]", ref)[-1]
    digits = "".join(ch for ch in item if ch.isdigit()) or "0"
    return Decimal(50_000 + (int(digits) % 1000) * 100)


def _shopee_ref(query: dict[str, str], body: bytes) -> str:
    return f"{query['shopid']}.{query['itemid']}"


def _shopee_answer(ref: str, price: Decimal | None) -> tuple[int, Any]:
    if price is None:
        return 200, {"error": 4, "error_msg": None, "data": None}
    shop_id, item_id = ref.split(".")
    scaled = int(price * 100_000)
    return 200, {
        "error": None,
        "error_msg": None,
        "data": {
            "itemid": int(item_id),
            "shopid": int(shop_id),
            "name": f"Shopee item {item_id}",
            "currency": "IDR",
            "price": scaled,
            "price_min": scaled,
            "price_max": scaled,
            "price_before_discount": scaled + 1_000_000_000,
            "stock": 7,
            "item_status": "normal",
        },
    }


def _tokopedia_ref(query: dict[str, str], body: bytes) -> str:
    variables = json.loads(body)[0]["variables"]
    return f"{variables['shopDomain']}/{variables['productKey']}"


def _tokopedia_answer(ref: str, price: Decimal | None) -> tuple[int, Any]:
    if price is None:
        return 200, [
            {
                "errors": [{"message": "product not found"}],
                "data": {"pdpGetLayout": None},
            }
        ]
    content = {
        "name": f"Tokopedia {ref}",
        "price": {"value": int(price) + 10_000, "currency": "IDR"},
        # A running campaign: the discounted price is what a buyer pays.
        "campaign": {
            "isActive": True,
            "discountedPrice": int(price),
            "originalPrice": int(price) + 10_000,
        },
        "stock": {"value": "12"},
    }
    layout = {
        "basicInfo": {"id": "2150", "status": "ACTIVE"},
        "components": [
            {"name": "product_media", "data": [{"media": []}]},
            {"name": "product_content", "data": [content]},
        ],
    }
    return 200, [{"data": {"pdpGetLayout": layout}}]


def _lazada_ref(query: dict[str, str], body: bytes) -> str:
    return query["itemId"]


def _lazada_answer(ref: str, price: Decimal | None) -> tuple[int, Any]:
    if price is None:
        return 200, {"success": False, "ret": ["FAIL_SYS_ITEM_NOT_FOUND"]}
    sku = {
        "price": {
            "salePrice": {"value": float(price), "text": f"Rp{price}"},
            "originalPrice": {"value": float(price) + 5000},
        },
        "stock": 3,
    }
    fields = {"product": {"title": f"Lazada {ref}"}, "skuInfos": {"0": sku}}
    return 200, {"success": True, "data": {"root": {"fields": fields}}}


SHOPEE = Marketplace("shopee", "/api/v4/item/get", _shopee_ref, _shopee_answer)
TOKOPEDIA = Marketplace(
    "tokopedia", "/graphql/PDPGetLayoutQuery", _tokopedia_ref, _tokopedia_answer
)
LAZADA = Marketplace("lazada", "/pdp/api/item", _lazada_ref, _lazada_answer)
BY_PATH = {market.path: market for market in (SHOPEE, TOKOPEDIA, LAZADA)}
