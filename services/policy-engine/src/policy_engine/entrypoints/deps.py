"""What a route of the policy engine may ask for as a parameter: its runtime and the engine's own objects."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from dunning_kit.dependencies import objects_of, runtime_of
from policy_engine.service_layer.objects import EngineObjects, EngineRuntime

Runtime = Annotated[EngineRuntime, Depends(runtime_of)]
Objects = Annotated[EngineObjects, Depends(objects_of)]
