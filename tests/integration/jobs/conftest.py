"""Fixtures of the job tests: a local venue agent for A2A dispatch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agnt_jobs.standins.venue_agent import FakeVenueAgent


@pytest.fixture
def venue_agent() -> Iterator[FakeVenueAgent]:
    server = FakeVenueAgent().start()
    yield server
    server.stop()
