"""Fan-out: messages per second the send queue pushes to a local channel gateway
(``peers``, its own process), at several ``AGNT_SEND_CONCURRENCY`` values, against
the same gateway calls made with the same client and concurrency but no queue (no
claim, no recording): the ratio is what the queue's bookkeeping costs.

Each run starts from a fresh copy of one database holding N due messages, and runs
in its own process (``agnt_jobs.bench.send``), so sender, gateway and benchmark do
not share an interpreter lock.
"""

from __future__ import annotations

import sqlalchemy as sa

from agnt_jobs import db
from agnt_jobs.bench.base import BenchContext
from agnt_jobs.bench.child import child_env, run_module
from agnt_jobs.bench.peers import PeerServer
from agnt_jobs.bench.report import Measurement, ratio

CONCURRENCIES = (1, 4, 8, 16, 32)

DUE_MESSAGES = """
INSERT INTO send_queue (idempotency_key, kind, user_id, channel, recipient, body,
                        next_attempt_at)
SELECT 'fanout:' || g, 'reminder', NULL, 'whatsapp', '+62812' || lpad(g::text, 8, '0'),
       'Reminder: your table for two is at half past seven tonight.',
       now() - interval '1 minute'
FROM generate_series(1, :messages) g
"""


def messages_for(scale: int) -> int:
    return max(100, min(50 * scale, 5000))


def _fill(url: str, messages: int) -> None:
    engine = db.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(DUE_MESSAGES), {"messages": messages})
            connection.execute(sa.text("ANALYZE send_queue"))
    finally:
        engine.dispose()


def run(
    ctx: BenchContext, concurrencies: tuple[int, ...] = CONCURRENCIES
) -> list[Measurement]:
    messages = messages_for(ctx.scale)
    template = ctx.server.migrated("fanout")
    _fill(ctx.server.url(template), messages)
    measurements = []
    best: tuple[float, int] | None = None
    with PeerServer() as peers:
        for concurrency in concurrencies:
            settings = {
                "AGNT_CHANNEL_GATEWAY_URL": peers.url,
                "AGNT_SEND_CONCURRENCY": str(concurrency),
            }
            copy = ctx.server.create("fanout_run", template=template)
            try:
                queued = run_module(
                    "agnt_jobs.bench.send",
                    ["queue"],
                    child_env(ctx.server.url(copy), **settings),
                ).output
            finally:
                ctx.server.wait_idle(copy)
                ctx.server.drop(copy)
            direct = run_module(
                "agnt_jobs.bench.send",
                ["raw", f"--messages={messages}"],
                child_env(ctx.server.url(template), **settings),
            ).output
            ctx.say(
                f"fanout: concurrency {concurrency}: {queued['per_second']} msg/s "
                f"(raw {direct['per_second']})"
            )
            if queued["sent"] != messages:
                raise RuntimeError(
                    f"the send queue sent {queued['sent']} of {messages} messages"
                )
            if best is None or queued["per_second"] > best[0]:
                best = (queued["per_second"], concurrency)
            measurements.append(
                Measurement(
                    family="fanout",
                    name=f"send queue, concurrency {concurrency}",
                    value=queued["per_second"],
                    unit="msg/s",
                    baseline=direct["per_second"],
                    ratio=ratio(queued["per_second"], direct["per_second"]),
                    goal="report the best",
                    details={"queue": queued, "raw": direct, "messages": messages},
                )
            )
    assert best is not None
    for measurement in measurements:
        if measurement.name.endswith(f"concurrency {best[1]}"):
            measurement.met = True
            measurement.note = (
                f"best: AGNT_SEND_CONCURRENCY={best[1]}, {messages} messages "
                "through send_queue.deliver_due"
            )
    return measurements
