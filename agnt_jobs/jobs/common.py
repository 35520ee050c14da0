"""What the booking, A2A and messaging jobs share: the two ways they walk a table in
chunks, who may be messaged, and delivering the messages a job has just queued.

Every job statement returns one row of counts per chunk, always with ``scanned`` (rows
the chunk looked at) and, for keyset walks, ``last_id`` (where the next chunk starts).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.clients.channel import ChannelGateway
from agnt_jobs.delivery import send_queue
from agnt_jobs.scheduler.bodies import JobResult, RunContext
from agnt_jobs.walk import walk

logger = logging.getLogger(__name__)

# A user we may message: not deleted, agreed to service messages, has an address on
# their channel. Use with the user aliased ``u``.
REACHABLE = (
    "u.deleted_at IS NULL AND u.notifications_opt_in AND u.channel_address IS NOT NULL"
)

# The columns every set-based enqueue fills, in this order.
SEND_QUEUE_COLUMNS = "(idempotency_key, kind, user_id, channel, recipient, body)"


def until_done(
    engine: Engine, statement: sa.TextClause, params: Mapping[str, Any], chunk: int
) -> Counter[str]:
    """Run a claim-and-change statement until a chunk finds fewer than ``chunk`` rows
    (its ``scanned`` count). Each chunk is its own transaction; rows another copy
    holds are skipped, not waited on."""
    return walk(engine, statement, params, chunk)[0]


def keyset(
    engine: Engine, statement: sa.TextClause, params: Mapping[str, Any], chunk: int
) -> Counter[str]:
    """Walk a table in id order, ``chunk`` ids per transaction (``:after`` is the
    last id of the previous chunk): for passes over every venue or user, where most
    rows need nothing and would otherwise be looked at again and again."""
    return walk(
        engine,
        statement,
        params,
        chunk,
        cursor={"after": "last_id"},
        start={"after": 0},
    )[0]


# The columns keyset_by_time needs back: where the next chunk starts, for a
# statement whose chunk CTE is named ``chunk`` and has columns ``at`` and ``id``.
LAST_OF_CHUNK = """(SELECT at FROM chunk ORDER BY at DESC, id DESC LIMIT 1) AS last_at,
           (SELECT id FROM chunk ORDER BY at DESC, id DESC LIMIT 1) AS last_id"""


def keyset_by_time(
    engine: Engine, statement: sa.TextClause, params: Mapping[str, Any], chunk: int
) -> Counter[str]:
    """Walk rows in (timestamp, id) order, ``chunk`` rows per transaction
    (``:after_at``, ``:after_id`` are where the previous chunk ended; the statement
    returns them as ``last_at``, ``last_id``, see ``LAST_OF_CHUNK``): for passes
    over one period's rows, whose cost must follow the period, not the table."""
    return walk(
        engine,
        statement,
        params,
        chunk,
        cursor={"after_at": "last_at", "after_id": "last_id"},
        start={"after_at": datetime.min.replace(tzinfo=UTC), "after_id": 0},
    )[0]


def gateway(ctx: RunContext) -> ChannelGateway:
    """The channel gateway, built before a job changes anything: a job that cannot
    send fails at once with the missing setting, having done nothing."""
    return ChannelGateway.from_settings(ctx.settings)


def deliver(ctx: RunContext, client: ChannelGateway, *kinds: str) -> dict[str, int]:
    """Deliver the PENDING messages of ``kinds``: the ones this run queued, and any
    an earlier run queued and crashed before sending. FAILED ones are left to
    retry_failed_sends and its backoff."""
    return send_queue.deliver_due(
        ctx.engine, ctx.settings, client, statuses=("PENDING",), kinds=kinds
    )


def summary(counts: Mapping[str, int], delivery: Mapping[str, int]) -> JobResult:
    """The job's result: its own counts (without ``scanned``) and the delivery's."""
    result: JobResult = {k: int(v) for k, v in counts.items() if k != "scanned"}
    result.update(delivery)
    return result
