"""What insights' runtime holds: its Settings, and no objects of its own beyond the kit's parts."""

from __future__ import annotations

from dunning_kit.runtime import ServiceRuntime
from insights.settings import Settings

InsightsRuntime = ServiceRuntime[Settings, None]
