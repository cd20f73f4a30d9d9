"""Uploaded files as a worker sees them: the file row (checked: the right purpose, ready) and
local paths of the upload and of the arrays prepared from it (see the prepared-file contract)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.db import session_scope
from app.models import File, FileStatus
from app.settings import Settings
from app.store import make_store
from app.store.cache import DownloadCache
from distillery.types.catalog import SpecError


@dataclass(frozen=True)
class UploadedFile:
    id: str
    purpose: str
    format: str
    bytes: int
    sha256: str
    storage_key: str
    info: dict[str, Any]
    settings: Settings

    def local_path(self, key: str | None = None) -> Path:
        """A local copy of the upload itself, or of one of its prepared arrays (a store key)."""
        settings = self.settings
        store = make_store(settings.artifact_url, settings.s3_endpoint_url)
        cache = DownloadCache(settings.download_cache_root, settings.download_cache_bytes)
        return store.local_path(key or self.storage_key, cache)

    def array_path(self, name: str) -> Path | None:
        key = self.info.get("arrays", {}).get(name)
        return None if key is None else self.local_path(key)


def uploaded_file(
    settings: Settings, file_id: str, purpose: str, param: str, *, tenant: str
) -> UploadedFile:
    """The file row, which must be a ready upload of `purpose` of the job's `tenant`;
    SpecError(param) otherwise (a file of another tenant is "no file", as the API says)."""
    with session_scope(settings.database_url) as session:
        row = session.get(File, file_id)
        if row is None or row.tenant != tenant:
            raise SpecError(param, f"no file {file_id!r}")
        if row.purpose != purpose:
            raise SpecError(param, f"file {file_id} is a {row.purpose!r} file, not {purpose!r}")
        if row.status != FileStatus.READY or row.info is None or row.sha256 is None:
            raise SpecError(param, f"file {file_id} is not ready (status {row.status!r})")
        return UploadedFile(
            id=row.id,
            purpose=row.purpose,
            format=row.format,
            bytes=int(row.bytes),
            sha256=row.sha256,
            storage_key=row.storage_key,
            info=dict(row.info),
            settings=settings,
        )
