"""The local copies of a remote store's files that workers and file checks read from disk
(uploads, their prepared arrays, teacher files): a CappedFolder under
DISTILLERY_DOWNLOAD_CACHE_BYTES at `<work_dir>/cache`, least recently used copies evicted first.

A copy is pinned (a shared flock on an open descriptor) from the moment it is handed out until
the process that asked for it ends: each job, estimate and file check runs in a process of its
own, so a copy is never evicted while a job reads it, and is evictable once the job is over.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from app.capped_folder import CappedFolder

# This process's pinned copies: held open (and locked) until it exits.
_pinned: list[BinaryIO] = []


class DownloadCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.folder = CappedFolder(root, max_bytes)

    @property
    def root(self) -> Path:
        return self.folder.root

    def get(self, name: str, size: int, download: Callable[[BinaryIO], None]) -> Path:
        """The local copy `name` (a relative path), `size` bytes long: the cached one when it
        has that size, else written by `download` (room made for it first). Pinned until this
        process ends."""
        f = self.folder.open(name)
        if f is not None and os.fstat(f.fileno()).st_size != size:
            f.close()  # stale (the key was written again): replaced below
            f = None
        if f is None:
            f = self.folder.add(name, size, download)
        _pinned.append(f)
        return self.folder.path(name)
