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

_configured = False


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider once per process. Tests pass an in-memory exporter."""
    global _configured
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)}))
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "none").lower()
    if exporter is None and wanted not in ("", "none"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
