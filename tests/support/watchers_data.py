"""Builders for price watchers."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def add_watcher(
    connection: Connection,
    user_id: int,
    marketplace: str,
    product_ref: str,
    target: Decimal | int,
    *,
    status: str = "ACTIVE",
) -> int:
    return connection.execute(
        sa.text(
            """
            INSERT INTO price_watchers (user_id, marketplace, product_ref,
                                        target_price, status)
            VALUES (:user_id, :marketplace, :ref, :target, :status)
            RETURNING id
            """
        ),
        {
            "user_id": user_id,
            "marketplace": marketplace,
            "ref": product_ref,
            "target": target,
            "status": status,
        },
    ).scalar_one()


def add_watchers(
    connection: Connection,
    user_id: int,
    marketplace: str,
    refs: list[str],
    target: Decimal | int,
) -> list[int]:
    return [add_watcher(connection, user_id, marketplace, r, target) for r in refs]
