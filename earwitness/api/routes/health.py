"""Liveness and readiness: database, worker and PBX link in one report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from earwitness.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health(runtime: RuntimeDep) -> JSONResponse:
    """200 when every part is healthy, 503 (same body) when one is not."""
    parts: dict[str, Any] = runtime.health()
    ok = all(part.get("ok", False) for part in parts.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", **parts}, status_code=200 if ok else 503
    )
