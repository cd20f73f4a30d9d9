"""The store: where uploads, exported students and reports are kept and served from.

A local folder by default (`DISTILLERY_ARTIFACT_URL=./artifacts`); `s3://bucket/prefix` for an
S3-compatible store. Keys such as `jobs/<job_id>/<name>` or `files/<file_id>/upload` always come
from the database, never from a URL.
"""

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

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

    def local_path(self, key: str, cache_root: Path) -> Path:
        """A local file with the key's content: the file itself for a local store, a copy
        kept under `cache_root` for a remote one."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under `prefix` (a folder-like prefix ending in '/')."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (a folder-like prefix ending in '/'), sorted."""
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


class LocalStore:
    """A local folder."""

    remote = False

    def __init__(self, url: str) -> None:
        self.root = Path(url.removeprefix("file://")).expanduser().resolve()

    def staging_dir(self) -> Path:
        # Inside the root, so a finished upload is moved into place by a rename.
        path = self.root / ".staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def put_file(
        self, key: str, source: Path, *, move: bool = False, sha256: str | None = None
    ) -> tuple[int, str]:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = sha256 or sha256_of(source)
        if move:
            try:
                os.replace(source, target)
                return target.stat().st_size, digest
            except OSError:  # another filesystem: copy below
                pass
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        if move:
            source.unlink(missing_ok=True)
        return target.stat().st_size, digest

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def open_chunks(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk

    def local_path(self, key: str, cache_root: Path) -> Path:
        return self._path(key)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        if path == self.root:
            raise ValueError("refusing to delete the whole store")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not folder.is_dir():
            return []
        keys = []
        for path in folder.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            # Files still being written (.partial) and uploads not yet in place (.staging).
            if path.is_file() and not key.endswith(".partial") and not key.startswith(".staging/"):
                keys.append(key)
        return sorted(keys)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"store key {key!r} leaves the store")
        return path


def make_store(url: str, s3_endpoint_url: str | None = None) -> Store:
    """The store the settings name: `s3://bucket/prefix` or a local folder."""
    if url.startswith("s3://"):
        from app.s3 import S3Store

        return S3Store(url, endpoint_url=s3_endpoint_url)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"store {url!r}: use a local folder or s3://bucket/prefix")
    return LocalStore(url)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
