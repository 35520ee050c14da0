"""Child process of the fan-out benchmark: deliver every due message of the send
queue through the channel gateway (``send_queue.deliver_due``, what the messaging jobs
call), or, as the baseline, make the same number of gateway calls with the same
client and concurrency and no database at all. Prints the figures as JSON.

    python -m agnt_jobs.bench.send queue            # AGNT_SEND_CONCURRENCY=8 ...
    python -m agnt_jobs.bench.send raw --messages 5000
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def through_queue() -> dict[str, Any]:
    from agnt_jobs import db
    from agnt_jobs.clients.channel import ChannelGateway
    from agnt_jobs.delivery import send_queue
    from agnt_jobs.settings import get_settings

    settings = get_settings()
    engine = db.engine()
    with ChannelGateway.from_settings(settings) as gateway:
        started = time.perf_counter()
        result = send_queue.deliver_due(engine, settings, gateway)
        seconds = time.perf_counter() - started
    engine.dispose()
    return {"sent": result["sent"], "failed": result["failed"], "seconds": seconds}


def raw(messages: int) -> dict[str, Any]:
    from agnt_jobs.clients.channel import ChannelGateway
    from agnt_jobs.settings import get_settings

    settings = get_settings()
    with (
        ChannelGateway.from_settings(settings) as gateway,
        ThreadPoolExecutor(max_workers=settings.send_concurrency) as pool,
    ):
        started = time.perf_counter()
        sent = list(
            pool.map(
                lambda n: gateway.send(
                    f"+62812{n:08d}", "whatsapp", "Your table is ready.", f"raw:{n}"
                ),
                range(messages),
            )
        )
        seconds = time.perf_counter() - started
    return {"sent": len(sent), "failed": 0, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("how", choices=("queue", "raw"))
    parser.add_argument("--messages", type=int, default=0)
    args = parser.parse_args()
    figures = through_queue() if args.how == "queue" else raw(args.messages)
    figures["per_second"] = round(figures["sent"] / figures["seconds"], 1)
    figures["seconds"] = round(figures["seconds"], 4)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
