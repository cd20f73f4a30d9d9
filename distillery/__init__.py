"""The Distillery Python SDK: `Client` (sync) and `AsyncClient` for the HTTP API, returning the
API's own pydantic models (distillery.types) and raising its errors as typed exceptions.

    from distillery import Client

    with Client() as client:  # DISTILLERY_URL, DISTILLERY_API_KEY
        job = client.jobs.create(spec, idempotency_key="digits-1")
        for event in client.jobs.events(job.id):
            print(event.kind, event.message)
        client.jobs.download(job.id, "student.onnx", "out/")

A webhook receiver checks each delivery with `verify_signature(body, header, secret)`.
"""

from distillery.async_client import AsyncClient
from distillery.client import Client
from distillery.config import VERSION as __version__
from distillery.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequest,
    ChecksumMismatch,
    Conflict,
    DistilleryError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    UnprocessableEntity,
)
from distillery.types import Artifact, File, Job, JobCreate, JobEvent, JobListItem, MetricRow
from distillery.types.webhooks import InvalidSignature
from distillery.types.webhooks import verify as verify_signature

__all__ = [
    "APIConnectionError",
    "Artifact",
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "ChecksumMismatch",
    "Client",
    "Conflict",
    "DistilleryError",
    "File",
    "InvalidSignature",
    "Job",
    "JobCreate",
    "JobEvent",
    "JobListItem",
    "MetricRow",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "UnprocessableEntity",
    "__version__",
    "verify_signature",
]
