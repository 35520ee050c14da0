"""OpenTelemetry traces, off unless configured: with the ``tracing`` extra installed
(``pip install 'agnt-jobs[tracing]'``) and the standard ``OTEL_*`` variables naming
an exporter (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_TRACES_EXPORTER``), a worker exports a span per run over OTLP. Without
either, ``span`` costs a context manager and one check, and makes no span.

Traces are on when a tracer provider is set for the process (``configure``, a host
application, a test's in-memory one); until then ``on()`` is False, no span
object is made, and deferring carries no trace context.

A deferred job carries its deferrer's W3C ``traceparent`` (``job_traces``,
docs/schema.sql): the run's span is a child of the span that deferred it.

``configure`` is called once per process where a worker is built; everything else
only asks for spans through ``span``, against the process's tracer provider (the
one ``configure`` set, or one a host application set itself).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator,
    )
except ImportError:  # the tracing extra is not installed
    trace = None  # type: ignore[assignment]
    TraceContextTextMapPropagator = None  # type: ignore[assignment,misc]

TRACER_NAME = "agnt_jobs"
SERVICE_NAME = "agnt-jobs"
_EXPORTER_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)
_configured = False
# Set once a real tracer provider is seen: a process's provider is set only once.
_on = False


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (an exporter named, not ``none``,
    and ``OTEL_SDK_DISABLED`` not true)."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _EXPORTER_VARIABLES)


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Set the process's tracer provider to export over OTLP, once, when the
    environment asks for traces and the SDK is installed; True if it did. A host
    application that set a provider of its own keeps it."""
    global _configured
    if _configured or not requested(environ):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return False
    environ = os.environ if environ is None else environ
    resource = Resource.create(
        {"service.name": environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    assert trace is not None  # the SDK imported, so did the API
    trace.set_tracer_provider(provider)
    _configured = True
    return True


class _Unrecorded:
    """What ``span`` yields when traces are not installed."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_status_error(self, description: str) -> None:
        pass


class _Span:
    def __init__(self, span: Any) -> None:
        self._span = span

    def set_attribute(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def set_status_error(self, description: str) -> None:
        assert trace is not None
        self._span.set_status(trace.Status(trace.StatusCode.ERROR, description))


def on() -> bool:
    """Whether spans are recorded: the extra is installed and a tracer provider is
    set for the process (the API's default is a proxy that records nothing).

    Asked once per run and per defer, so it reads the API's global directly while
    off (the public ``get_tracer_provider`` also looks up an environment variable
    on every call, most of the cost of traces off)."""
    global _on
    if trace is None:
        return False
    if _on:
        return True
    if getattr(trace, "_TRACER_PROVIDER", True) is None:
        return False
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return False
    _on = True
    return True


class _Off:
    """What ``span`` is with traces off: a context manager that makes nothing."""

    def __enter__(self) -> _Unrecorded:
        return _UNRECORDED

    def __exit__(self, *exc_info: object) -> None:
        return None


_UNRECORDED = _Unrecorded()
_OFF = _Off()
_PROPAGATOR = None if trace is None else TraceContextTextMapPropagator()


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | None = None,
    kind: str = "INTERNAL",
) -> contextlib.AbstractContextManager[_Span | _Unrecorded]:
    """A span named ``name`` around the block, with ``attributes`` (None values
    left out), a child of the current span or, given ``parent`` (a W3C
    traceparent), of that one. ``kind``: INTERNAL, PRODUCER (a defer), CONSUMER
    (a run) or CLIENT (an outside call). An exception leaving the block is
    recorded on it, and re-raised. With traces off, no span is made."""
    if not on():
        return _OFF
    return _recorded(name, attributes, parent, kind)


@contextlib.contextmanager
def _recorded(
    name: str, attributes: Mapping[str, Any] | None, parent: str | None, kind: str
) -> Iterator[_Span]:
    assert trace is not None and _PROPAGATOR is not None
    tracer = trace.get_tracer(TRACER_NAME)
    present = {
        key: value for key, value in (attributes or {}).items() if value is not None
    }
    context = None if parent is None else _PROPAGATOR.extract({"traceparent": parent})
    with tracer.start_as_current_span(
        name, context=context, kind=trace.SpanKind[kind], attributes=present
    ) as current:
        yield _Span(current)


def traceparent() -> str | None:
    """The W3C traceparent of the current span, to carry to a job's run; None with
    traces off or no span current."""
    if not on():
        return None
    assert _PROPAGATOR is not None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def annotate(key: str, value: Any) -> None:
    """Set an attribute on the current span (None left out); nothing with traces
    off."""
    if value is not None and on():
        assert trace is not None
        trace.get_current_span().set_attribute(key, value)
