"""An artifact download written to disk as it streams in, its sha256 checked against the one
the server announced (the ETag of GET /v1/jobs/{id}/artifacts/{name}, the `sha256` of its
listing) before the file takes its name: a failed or mismatched download leaves nothing."""

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from distillery.errors import ChecksumMismatch

CHUNK_BYTES = 1024 * 1024


def destination(dest: str | os.PathLike[str] | None, name: str) -> Path:
    """dest: an existing folder (the file goes in it under the artifact's name), a file path,
    or None (the current folder)."""
    base = Path(name).name
    if dest is None:
        return Path.cwd() / base
    path = Path(dest)
    return path / base if path.is_dir() else path


def etag_sha256(headers: Mapping[str, str]) -> str | None:
    """The sha256 an artifact's ETag names (`"<hex>"`), or None if there is no such ETag."""
    etag = headers.get("etag")
    if etag is None or etag.startswith("W/"):
        return None
    return etag.strip('"').lower() or None


def verify_sha256(name: str, actual: str, expected: str | None) -> None:
    """ChecksumMismatch unless `actual` is `expected` (nothing to check when it is None)."""
    if expected is not None and actual.lower() != expected.lower():
        raise ChecksumMismatch(
            f"{name}: sha256 {actual} differs from the expected {expected}",
            code="checksum_mismatch",
        )


class ArtifactFile:
    """`with ArtifactFile(...) as file: file.write(chunk)...`: on leaving, the byte count and
    sha256 are checked and the file is renamed into place; on any error it is removed."""

    def __init__(
        self,
        path: Path,
        headers: Mapping[str, str],
        sha256: str | None = None,
    ) -> None:
        self.path = path
        self.expected = [d for d in (etag_sha256(headers), sha256) if d is not None]
        length = headers.get("content-length")
        self.expected_bytes = int(length) if length is not None and length.isdigit() else None
        self.partial = path.with_name(f".{path.name}.part")
        self.bytes = 0
        self._digest = hashlib.sha256()
        self._file: IO[bytes] | None = None

    def __enter__(self) -> "ArtifactFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.partial.open("wb")
        return self

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self._digest.update(chunk)
        self.bytes += len(chunk)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._file is not None
        self._file.close()
        try:
            if kind is None:
                self._finish()
        finally:
            self.partial.unlink(missing_ok=True)

    def _finish(self) -> None:
        if self.expected_bytes is not None and self.bytes != self.expected_bytes:
            raise ChecksumMismatch(
                f"{self.path.name}: received {self.bytes} bytes of {self.expected_bytes}",
                code="incomplete_download",
            )
        actual = self._digest.hexdigest()
        for expected in self.expected:
            verify_sha256(self.path.name, actual, expected)
        os.replace(self.partial, self.path)
