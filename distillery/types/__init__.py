"""The wire contract between the service, its workers and its clients (as `openai.types`):
request and response models, the catalog of what a job may name, the webhook signature scheme
and the names the API and the workers reach each other by. Pydantic and the standard library
only: `app/` and `worker/` import it, and the SDK ships it without the server."""

from distillery.types.catalog.base import CatalogEntry, CatalogList
from distillery.types.errors import ErrorBody, ErrorResponse
from distillery.types.estimates import (
    ActualCost,
    DeviceEstimate,
    Estimate,
    EstimateNote,
    JobCost,
    ModelCost,
    StageWork,
    Work,
)
from distillery.types.fields import TrainSettings
from distillery.types.files import File, FileDeleted, FileList, FilePurpose
from distillery.types.job_spec import (
    DatasetSpec,
    DistillSpec,
    JobCreate,
    StudentSpec,
    TransferSet,
    WebhookSpec,
)
from distillery.types.jobs import (
    Artifact,
    ArtifactList,
    ErrorInfo,
    Job,
    JobEvent,
    JobEventList,
    JobList,
    JobListItem,
    MetricList,
    MetricRow,
    Progress,
)
from distillery.types.sessions import Session, SessionCreate

__all__ = [
    "ActualCost",
    "Artifact",
    "ArtifactList",
    "CatalogEntry",
    "CatalogList",
    "DatasetSpec",
    "DeviceEstimate",
    "DistillSpec",
    "ErrorBody",
    "ErrorInfo",
    "ErrorResponse",
    "Estimate",
    "EstimateNote",
    "File",
    "FileDeleted",
    "FileList",
    "FilePurpose",
    "Job",
    "JobCost",
    "JobCreate",
    "JobEvent",
    "JobEventList",
    "JobList",
    "JobListItem",
    "MetricList",
    "MetricRow",
    "ModelCost",
    "Progress",
    "Session",
    "SessionCreate",
    "StageWork",
    "StudentSpec",
    "TrainSettings",
    "TransferSet",
    "WebhookSpec",
    "Work",
]
