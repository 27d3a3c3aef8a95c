"""Bulk CSV import and freshness routes (API v1)."""

from __future__ import annotations

import io
import tempfile
from typing import IO, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from dunning_kit.auth import Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.problems import invalid_input
from ledger_sync.domain.csv_format import FORMATS
from ledger_sync.entrypoints.deps import Runtime
from ledger_sync.entrypoints.problems import error
from ledger_sync.entrypoints.schemas import IMPORT_BODY, FreshnessOut, ImportColumn, ImportReportOut
from ledger_sync.service_layer.freshness import freshness
from ledger_sync.service_layer.imports import import_csv

router = APIRouter(prefix="/v1", tags=["import", "freshness"])

_SPOOL_IN_MEMORY = 1 << 20  # beyond 1 MiB the upload goes to a temporary file


@router.get(
    "/imports/formats",
    response_model=dict[str, list[ImportColumn]],
    summary="The CSV column format of each import kind",
)
async def import_formats(principal: Tenant) -> dict[str, Any]:
    return {
        kind: [{"column": c.name, "required": c.required, "description": c.doc} for c in fmt.columns]
        for kind, fmt in FORMATS.items()
    }


@router.post(
    "/imports/{kind}",
    summary="Import a CSV file (body text/csv, or multipart field `file`)",
    response_model=ImportReportOut,
    openapi_extra=IMPORT_BODY,
    dependencies=[Idempotent],
    responses={
        200: {"description": "Imported (with `partial`, the skipped rows are listed)"},
        422: {"description": "The file has errors: every one with line and column; nothing was imported"},
    },
)
async def import_file(
    kind: Literal["customers", "invoices", "payments"],
    principal: Tenant,
    request: Request,
    runtime: Runtime,
    partial: bool = Query(False, description="Import the valid rows and report the skipped ones"),
) -> JSONResponse:
    raw: IO[bytes]
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return error(422, "validation failed", "file", "multipart upload needs a file field named `file`")
        raw = upload.file
    else:
        raw = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - closed below
        async for chunk in request.stream():
            raw.write(chunk)
        raw.seek(0)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        report = await import_csv(
            runtime.sessions,
            runtime.outbox,
            runtime.clock,
            principal.tenant_id,
            kind,
            text,
            partial=partial,
            batch_size=runtime.settings.import_batch_size,
        )
    finally:
        text.close()
    body = report.as_dict()
    if not report.committed:
        errors = body.pop("errors")
        summary = f"import rejected: {report.error_count} error(s); nothing was imported"
        return invalid_input(errors, detail=summary, request=request, **body)
    return JSONResponse(body, status_code=200)


@router.get("/freshness", response_model=FreshnessOut, summary="Per connector: when the last successful sync finished")
async def get_freshness(principal: Tenant, runtime: Runtime) -> dict[str, Any]:
    async with runtime.sessions() as session:
        return {"connectors": await freshness(session, principal.tenant_id, runtime.clock.now())}
