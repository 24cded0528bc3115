"""Durable background jobs: enqueue from anywhere, run by the in-process worker or Celery."""

from earwitness.jobs.queue import enqueue, get_job
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.jobs.worker import Worker

__all__ = ["JobContext", "Worker", "enqueue", "get_job", "job_handler"]
