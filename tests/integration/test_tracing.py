"""OpenTelemetry traces: a span per run, recorded by the SDK's in-memory exporter
around real runs of a real worker; and off unless the OTEL_* variables ask."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from procrastinate import App

from agnt_jobs import tracing
from agnt_jobs.clients.errors import PermanentError, RetryableError
from agnt_jobs.clients.http import build_client, request
from agnt_jobs.clients.stripe_client import StripeGateway
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.standins.server import LocalServer, Received, Reply
from tests.support.tracing import child_of, named
from tests.support.tracing import spans as spans


def _ok(ctx: RunContext) -> dict[str, int]:
    return {"done": 1}


def _boom(ctx: RunContext) -> dict[str, int]:
    raise ValueError("the gateway said no")


async def test_each_run_is_a_span_with_its_job_attempt_worker_and_outcome(
    app: App, spans: InMemorySpanExporter
) -> None:
    for name, body in (("test_trace_ok", _ok), ("test_trace_boom", _boom)):
        BODIES[name] = body
        make_task(app, name, body)
    try:
        async with app.open_async():
            ok = await app.tasks["test_trace_ok"].defer_async()
            boom = await app.tasks["test_trace_boom"].defer_async()
            await app.run_worker_async(wait=False, install_signal_handlers=False)
    finally:
        for name in ("test_trace_ok", "test_trace_boom"):
            BODIES.pop(name)
            app.tasks.pop(name)
    runs = {s.name: s for s in spans.get_finished_spans() if s.name.startswith("run ")}
    succeeded, failed = runs["run test_trace_ok"], runs["run test_trace_boom"]
    assert succeeded.attributes is not None and failed.attributes is not None
    attributes = dict(succeeded.attributes)
    assert isinstance(attributes.pop("agnt.worker_id"), int)
    assert attributes == {
        "agnt.job": "test_trace_ok",
        "agnt.job_id": ok,
        "agnt.attempt": 1,
        "agnt.queue": "default",
        "agnt.worker": "worker",
        "agnt.outcome": "succeeded",
    }
    assert succeeded.status.status_code == trace.StatusCode.UNSET
    assert failed.attributes["agnt.job_id"] == boom
    assert failed.attributes["agnt.outcome"] == "failed"
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert "ValueError: the gateway said no" in (failed.status.description or "")
    assert [event.name for event in failed.events] == ["exception"]


@pytest.mark.parametrize(
    ("environ", "asked"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
            True,
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}, False),
    ],
)
def test_traces_are_off_unless_the_environment_asks(
    environ: dict[str, str], asked: bool
) -> None:
    assert tracing.requested(environ) is asked


def test_configured_from_the_environment_a_process_exports_over_otlp() -> None:
    """In a process of its own: a tracer provider is set once per process."""
    probe = (
        "import json, os\n"
        "from opentelemetry import trace\n"
        "from agnt_jobs import tracing\n"
        "off = tracing.configure({})\n"
        "before = type(trace.get_tracer_provider()).__name__\n"
        "on = tracing.configure({'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:9',"
        " 'OTEL_SERVICE_NAME': 'agnt-worker'})\n"
        "provider = trace.get_tracer_provider()\n"
        "print(json.dumps([off, before, on, type(provider).__name__,"
        " provider.resource.attributes['service.name']]))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        False,
        "ProxyTracerProvider",
        True,
        "TracerProvider",
        "agnt-worker",
    ]


def test_without_the_extra_a_span_records_nothing_and_costs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "trace", None)
    with tracing.span("run x", {"agnt.job": "x"}) as unrecorded:
        unrecorded.set_attribute("agnt.outcome", "failed")
        unrecorded.set_status_error("failed")
    with pytest.raises(ValueError), tracing.span("run y"):
        raise ValueError("passes through")


async def test_an_outside_call_is_a_child_span_of_its_run(
    app: App, spans: InMemorySpanExporter
) -> None:
    peer = LocalServer(
        lambda request: Reply(200 if request.path.startswith("/ok") else 503)
    ).start()
    base = peer.url

    def calls(ctx: RunContext) -> dict[str, int]:
        with build_client(base, timeout=5) as client:
            request(client, "GET", "/ok?key=secret")
            with contextlib.suppress(RetryableError):
                request(client, "GET", "/down")
        return {"calls": 2}

    BODIES["test_trace_calls"] = calls
    make_task(app, "test_trace_calls", calls)
    try:
        async with app.open_async():
            await app.tasks["test_trace_calls"].defer_async()
            await app.run_worker_async(wait=False, install_signal_handlers=False)
    finally:
        peer.stop()
        BODIES.pop("test_trace_calls")
        app.tasks.pop("test_trace_calls")
    finished = spans.get_finished_spans()
    (run,) = [s for s in finished if s.name == "run test_trace_calls"]
    ok, down = [s for s in finished if s.name == "HTTP GET"]
    for call in (ok, down):
        assert call.parent is not None
        assert call.parent.span_id == run.context.span_id
        assert call.context.trace_id == run.context.trace_id
    assert ok.attributes is not None and down.attributes is not None
    assert dict(ok.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "url.path": "/ok",
        "http.response.status_code": 200,
    }
    assert down.attributes["http.response.status_code"] == 503
    assert down.status.status_code == trace.StatusCode.ERROR
    assert run.attributes is not None
    assert run.attributes["agnt.outcome"] == "succeeded"


def _stripe(request: Received) -> Reply:
    """Stripe's answers to a retrieve: the invoice in_ok, and no other."""
    if request.path.startswith("/v1/invoices/in_ok"):
        return Reply(200, {"id": "in_ok", "object": "invoice"})
    missing = {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "message": "No such invoice",
    }
    return Reply(404, {"error": missing})


def test_each_stripe_call_is_a_child_span_of_the_current_one(
    spans: InMemorySpanExporter,
) -> None:
    stand_in = LocalServer(_stripe).start()
    base = stand_in.url
    gateway = StripeGateway("sk_test_trace", base, timeout=5, max_network_retries=0)
    try:
        with trace.get_tracer("test").start_as_current_span("run monthly_invoice"):
            gateway.invoice("in_ok")
            with pytest.raises(PermanentError):
                gateway.invoice("in_missing")
    finally:
        stand_in.stop()
    finished = spans.get_finished_spans()
    run = named(spans, "run monthly_invoice")
    found, missing = [s for s in finished if s.name.startswith("stripe ")]
    assert found.name == missing.name == "stripe InvoiceService.retrieve"
    assert child_of(found, run) and child_of(missing, run)
    assert found.kind == trace.SpanKind.CLIENT
    assert dict(found.attributes or {}) == {
        "agnt.stripe.operation": "InvoiceService.retrieve"
    }
    assert found.status.status_code == trace.StatusCode.UNSET
    assert dict(missing.attributes or {}) == {
        "agnt.stripe.operation": "InvoiceService.retrieve",
        "http.response.status_code": 404,
        "agnt.stripe.error_code": "resource_missing",
    }
    assert missing.status.status_code == trace.StatusCode.ERROR
