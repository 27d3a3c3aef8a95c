"""What a route of workspace may ask for as a parameter: its runtime, typed by the service's Settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from dunning_kit.dependencies import runtime_of
from workspace.service_layer.objects import WorkspaceRuntime

Runtime = Annotated[WorkspaceRuntime, Depends(runtime_of)]
