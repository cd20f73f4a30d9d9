"""The local store: a folder (`DISTILLERY_ARTIFACT_URL=./artifacts`, the default)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from app.store.base import CHUNK_BYTES, sha256_of
from app.store.cache import DownloadCache


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

    def local_path(self, key: str, cache: DownloadCache) -> Path:
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
        return [key for key, _ in self.list_objects(prefix)]

    def list_objects(self, prefix: str) -> list[tuple[str, int]]:
        folder = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not folder.is_dir():
            return []
        objects = []
        for path in folder.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            # Files still being written (.partial) and uploads not yet in place (.staging).
            if key.endswith(".partial") or key.startswith(".staging/"):
                continue
            try:
                if path.is_file():
                    objects.append((key, path.stat().st_size))
            except FileNotFoundError:  # removed meanwhile
                continue
        return sorted(objects)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"store key {key!r} leaves the store")
        return path
