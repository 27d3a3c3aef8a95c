"""The typed-OpenAPI rule itself (dunning_kit.openapi_check): it flags what the per-service tests must never see."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from dunning_kit.openapi_check import untyped_operations


class Thing(BaseModel):
    name: str


def test_bare_answers_and_undeclared_raw_bodies_are_flagged_and_declared_ones_pass() -> None:
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, Any]:
        return {}

    @app.post("/raw")
    async def raw(request: Request) -> Thing:
        return Thing(name=(await request.body()).decode())

    @app.post("/typed", response_model=Thing)
    async def typed(body: Thing) -> Thing:
        return body

    @app.post("/declared-raw", response_model=Thing, openapi_extra={"requestBody": {"content": {
        "text/csv": {"schema": {"type": "string"}}}}})  # fmt: skip
    async def declared_raw(request: Request) -> Thing:
        return Thing(name=(await request.body()).decode())

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<p>hi</p>"

    @app.delete("/gone", status_code=204, response_class=Response)
    async def gone() -> Response:
        return Response(status_code=204)

    assert untyped_operations(app) == [
        "GET /bare: 200 application/json has no typed schema",
        "POST /raw: reads a request body the document does not declare",
    ]
