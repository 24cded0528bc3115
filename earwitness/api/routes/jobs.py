"""Background jobs: status and progress for anything queued (transcriptions, imports)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from earwitness.api.deps import PrincipalDep, SessionDep
from earwitness.api.params import DbInt
from earwitness.jobs import get_job
from earwitness.models import Job

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    state: str
    progress: float
    message: str
    attempts: int
    max_attempts: int
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@router.get("", response_model=list[JobOut])
def list_jobs(
    session: SessionDep,
    _: PrincipalDep,
    state: str | None = None,
    kind: str | None = None,
    limit: Annotated[DbInt, Query(ge=1, le=500)] = 50,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit).offset(offset)
    if state:
        query = query.where(Job.state == state)
    if kind:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


@router.get("/{job_id}", response_model=JobOut)
def read_job(job_id: DbInt, session: SessionDep, _: PrincipalDep) -> Job:
    return get_job(session, job_id)
