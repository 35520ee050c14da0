"""A private PostgreSQL cluster for a test, started, and removed afterwards; the test
is skipped where this machine cannot run one (``ClusterUnavailable`` says why)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from agnt_jobs.testing.cluster import ClusterUnavailable, PgCluster


@contextlib.contextmanager
def started() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster.temporary()
    except ClusterUnavailable as reason:
        pytest.skip(str(reason))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()
