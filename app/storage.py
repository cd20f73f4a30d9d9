"""The artifact store: where exported students and reports are kept and served from."""

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

CHUNK_BYTES = 1024 * 1024


class ArtifactStore:
    """A local folder. Keys are `<job_id>/<name>` and come from the database, never a URL."""

    def __init__(self, url: str) -> None:
        if "://" in url and not url.startswith("file://"):
            raise ValueError(
                f"artifact store {url!r}: only local folders are supported so far "
                "(S3-compatible stores are planned)"
            )
        self.root = Path(url.removeprefix("file://")).expanduser().resolve()

    def put_file(self, job_id: str, name: str, source: Path) -> tuple[str, int, str]:
        """Copy `source` into the store; returns (key, bytes, sha256)."""
        key = f"{job_id}/{name}"
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        return key, target.stat().st_size, sha256_of(target)

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def open_chunks(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"artifact key {key!r} leaves the store")
        return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
