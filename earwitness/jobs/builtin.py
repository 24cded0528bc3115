"""The product's own job handlers; each stage module registers its kinds here by import."""

from __future__ import annotations

from typing import Any

from earwitness.jobs.registry import JobContext, job_handler


@job_handler("selfcheck", max_attempts=1)
def selfcheck(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A trivial job the health check and operators can enqueue to prove the worker runs."""
    ctx.progress(100.0, "ok")
    return {"echo": payload.get("echo")}
