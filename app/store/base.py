"""The store's contract: the Store protocol every store implements (a local folder,
app/store/local.py; an S3 bucket, app/store/s3.py), the keys jobs and files are kept under,
and sha256_of.

Keys such as `jobs/<job_id>/<name>` or `files/<file_id>/upload` always come from the database,
never from a URL.
"""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.store.cache import DownloadCache

CHUNK_BYTES = 1024 * 1024


class Store(Protocol):
    # True when files live on another machine (S3): workers copy what they read to a local cache.
    remote: bool

    def staging_dir(self) -> Path:
        """A local folder for files on their way into the store (uploads being received)."""
        ...

    def put_file(
        self, key: str, source: Path, *, move: bool = False, sha256: str | None = None
    ) -> tuple[int, str]:
        """Store `source` under `key` (whole or not at all); returns (bytes, sha256).
        `move=True` lets the store take the file instead of copying it; `sha256`, when the
        caller already computed it (an upload hashed as it streamed in), is trusted instead of
        reading the file again."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def open_chunks(self, key: str) -> Iterator[bytes]: ...

    def local_path(self, key: str, cache: "DownloadCache") -> Path:
        """A local file with the key's content: the file itself for a local store, a copy
        kept in `cache` for a remote one (pinned until this process ends)."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under `prefix` (a folder-like prefix ending in '/')."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (a folder-like prefix ending in '/'), sorted."""
        ...

    def list_objects(self, prefix: str) -> list[tuple[str, int]]:
        """(key, bytes) of every key under `prefix`, sorted by key."""
        ...


def job_prefix(job_id: str) -> str:
    """Everything a job keeps in the store: its artifacts, and its work files in a remote one."""
    return f"jobs/{job_id}/"


def job_work_prefix(job_id: str) -> str:
    """A job's work files in a remote store (worker/worksync.py)."""
    return f"{job_prefix(job_id)}work/"


def artifact_key(job_id: str, name: str) -> str:
    return f"{job_prefix(job_id)}{name}"


def file_key(file_id: str, name: str) -> str:
    return f"files/{file_id}/{name}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
