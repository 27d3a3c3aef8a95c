"""OpenTelemetry set-up from the standard OTEL_* variables.

Spans are always created (so every log line and Kafka header carries a trace id that correlates one
flow across services); they are exported only when OTEL_TRACES_EXPORTER asks for it (off by default).
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_configured = False


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider once per process. Tests pass an in-memory exporter."""
    global _configured
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "none").lower()
    if exporter is None and wanted not in ("", "none"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
    # With nowhere to export to, recording spans is pure cost (~50 µs each, a quarter of a timer decision):
    # the spans are then non-recording but keep their trace and span ids, so logs and Kafka headers still
    # correlate. An exporter (or an explicit OTEL_TRACES_SAMPLER) turns recording on.
    sampler = None
    if exporter is None and not os.environ.get("OTEL_TRACES_SAMPLER"):
        sampler = ParentBased(ALWAYS_OFF)
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)}), sampler=sampler
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
