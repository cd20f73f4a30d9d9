"""Uploaded files (`/v1/files`): what a file is, as the API shows it."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from distillery.types.errors import ErrorBody
from distillery.types.fields import UtcDatetime

FilePurpose = Literal["dataset", "teacher", "logits"]


class File(BaseModel):
    id: str
    object: Literal["file"] = "file"
    purpose: str
    filename: str
    format: str
    bytes: int
    sha256: str | None
    status: str
    options: dict[str, Any]
    info: dict[str, Any] | None = Field(
        description="what the check found: rows, input shape and dtype, classes, ONNX signature"
    )
    error: ErrorBody | None = Field(description="why the file was refused")
    created_at: UtcDatetime


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[File]
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
