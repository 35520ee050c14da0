"""The SDK's in-memory exporter as the process's tracer provider, for the tests
of traces (a process's provider is set once: the first test that asks sets it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """What the process's spans record, emptied before and after the test."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The one finished span called ``name``."""
    (found,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return found


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    """Whether ``span`` is a child of ``parent``, in its trace."""
    return (
        span.parent is not None
        and span.parent.span_id == parent.context.span_id
        and span.context.trace_id == parent.context.trace_id
    )


# Attributes that differ from run to run (ids, instants): left out of a tree.
_VOLATILE = {"agnt.job_id", "agnt.worker_id", "agnt.tick"}


def tree(exporter: InMemorySpanExporter, root: ReadableSpan) -> str:
    """``root`` and its descendants, one line each, indented under its parent:
    name, kind and attributes, as docs/operations.md shows a trace."""
    finished = exporter.get_finished_spans()

    def lines(span: ReadableSpan, depth: int) -> list[str]:
        attributes = " ".join(
            f"{key}={value!s}"
            for key, value in sorted((span.attributes or {}).items())
            if key not in _VOLATILE
        )
        kind = span.kind.name
        head = [f"{'  ' * depth}{span.name} [{kind}] {attributes}".rstrip()]
        children = sorted(
            (s for s in finished if child_of(s, span)),
            key=lambda s: s.start_time or 0,
        )
        return head + [line for c in children for line in lines(c, depth + 1)]

    return "\n".join(lines(root, 0))
