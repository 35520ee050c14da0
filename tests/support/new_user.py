"""Starting our commands as a new user does: none of the settings a developer's
shell may hold, a free port, and a check that an embedded server is gone."""

from __future__ import annotations

import os
import socket
from pathlib import Path

# Settings a new user has none of.
UNSET = (
    "AGNT_DATABASE_URL",
    "INTERNAL_API_TOKEN",
    "AGNT_INTERNAL_API_TOKEN",
    "AGNT_CHANNEL_GATEWAY_URL",
    "AGNT_STRIPE_API_KEY",
)


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without ``UNSET``, plus ``settings``."""
    return {k: v for k, v in os.environ.items() if k not in UNSET} | settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_running(data_dir: Path) -> bool:
    """Whether the embedded server of ``data_dir`` still runs."""
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
