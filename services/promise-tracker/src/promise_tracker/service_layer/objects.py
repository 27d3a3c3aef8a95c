"""What promise-tracker's runtime holds: its Settings, and no objects of its own beyond the kit's parts (its
outbox writer is the set-wise one, set by bootstrap in the runtime's `outbox`)."""

from __future__ import annotations

from dunning_kit.runtime import ServiceRuntime
from promise_tracker.settings import Settings

TrackerRuntime = ServiceRuntime[Settings, None]
