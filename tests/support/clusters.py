"""A private PostgreSQL cluster for a test, started, and removed afterwards; the test
is skipped where this machine cannot run one (``ClusterUnavailable`` says why)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from agnt_jobs.testing.cluster import ClusterUnavailable, PgCluster


@contextlib.contextmanager
def started() -> Iterator[PgCluster]:
    with started_with() as cluster:
        yield cluster


@contextlib.contextmanager
def started_with(**settings: str) -> Iterator[PgCluster]:
    """A cluster started with these server settings beside ours."""
    try:
        cluster = PgCluster.temporary()
    except ClusterUnavailable as reason:
        pytest.skip(str(reason))
    cluster.settings.update(settings)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()
