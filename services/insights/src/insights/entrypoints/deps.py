"""What a route of insights may ask for as a parameter: its runtime, typed by the service's Settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from dunning_kit.dependencies import runtime_of
from insights.service_layer.objects import InsightsRuntime

Runtime = Annotated[InsightsRuntime, Depends(runtime_of)]
