"""W3C trace context carried in Kafka headers so one trace spans every service."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "dunning"

KafkaHeaders = Sequence[tuple[str, bytes]]


# One proxy tracer for the process: it follows whatever provider is installed later, and asking the SDK
# for a tracer per span costs more than the span itself.
_TRACER = trace.get_tracer(TRACER_NAME)


def tracer() -> trace.Tracer:
    return _TRACER


def current_trace_headers() -> dict[str, str]:
    """The active span's context as W3C headers (empty when nothing is being traced)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def to_kafka_headers(carrier: Mapping[str, str]) -> list[tuple[str, bytes]]:
    # A list, not a tuple: instrumentations append to it.
    return [(k, v.encode()) for k, v in carrier.items()]


def from_kafka_headers(headers: KafkaHeaders | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers or ():
        if key in ("traceparent", "tracestate") and value is not None:
            out[key] = value.decode(errors="replace")
    return out


@contextmanager
def consume_span(name: str, headers: KafkaHeaders | None, attributes: Mapping[str, str]) -> Iterator[Span]:
    """A consumer span whose parent is the producer's context taken from the record's headers."""
    parent = _PROPAGATOR.extract(from_kafka_headers(headers))
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(name, kind=SpanKind.CONSUMER, attributes=dict(attributes)) as span:
            yield span
    finally:
        otel_context.detach(token)


@contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: str) -> Iterator[Span]:
    with tracer().start_as_current_span(name, kind=kind, attributes=attributes) as s:
        yield s


@contextmanager
def resumed_span(name: str, carrier: Mapping[str, str] | None, **attributes: str) -> Iterator[Span]:
    """A span continuing a trace saved with a durable record (a timer row, a delivery row).

    Work that happens later than the event that caused it (a timer firing days after) keeps one trace:
    store `current_trace_headers()` with the record, resume it here when the record is acted on.
    """
    parent = _PROPAGATOR.extract(dict(carrier or {}))
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(name, attributes=attributes) as s:
            yield s
    finally:
        otel_context.detach(token)


def child_trace_headers(name: str, carrier: Mapping[str, str] | None, **attributes: str) -> dict[str, str]:
    """W3C headers of a new span that continues `carrier`'s trace, for batch work that stamps many records.

    The span is started and ended at once without becoming the current span: no context attach/detach and
    no context managers per record, which is most of what `resumed_span` + `current_trace_headers` cost.
    When nothing records spans (no SDK installed) the parent's context is passed on unchanged, as with
    `resumed_span`.
    """
    parent = _PROPAGATOR.extract(dict(carrier)) if carrier else None
    s = tracer().start_span(name, context=parent, attributes=attributes)
    s.end()
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers, context=trace.set_span_in_context(s))
    return headers
