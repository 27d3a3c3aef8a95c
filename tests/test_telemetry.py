"""Tracing set-up as `serve` installs it: spans are recorded only when something will export them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json
from dunning_kit.telemetry import configure_tracing
from dunning_events.tracing import current_trace_headers, span
configure_tracing("probe")
with span("probe") as s:
    print(json.dumps({"recording": s.is_recording(), "valid": s.get_span_context().is_valid,
                      "traceparent": current_trace_headers().get("traceparent", "")}))
"""


def probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_an_exporter_spans_keep_their_ids_but_record_nothing() -> None:
    seen = probe()
    assert seen["valid"] is True and seen["recording"] is False
    assert str(seen["traceparent"]).startswith("00-"), "ids still flow into headers and logs"


def test_an_exporter_or_an_explicit_sampler_turns_recording_on() -> None:
    assert probe(OTEL_TRACES_EXPORTER="console")["recording"] is True
    assert probe(OTEL_TRACES_SAMPLER="always_on")["recording"] is True
