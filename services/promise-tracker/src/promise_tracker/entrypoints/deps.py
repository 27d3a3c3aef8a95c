"""What a route of promise-tracker may ask for as a parameter: its runtime, typed by the service's Settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from dunning_kit.dependencies import runtime_of
from promise_tracker.service_layer.objects import TrackerRuntime

Runtime = Annotated[TrackerRuntime, Depends(runtime_of)]
