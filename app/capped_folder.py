"""A folder of files under a byte cap: the least recently used go first to make room.

The soft-label store keeps its entries in one (worker/softlabels.py), the download cache of a
remote store its copies (app/store/cache.py: names with folders, `files/<id>/upload`);
`distillery gc` trims both.
Several processes on one host share it safely, through flock locks, which the kernel drops when
their process dies (a crashed reader or writer never leaves one behind):

- An entry appears whole or not at all: it is written to a hidden partial file its writer holds
  locked, then renamed into place.
- A reader pins an entry with a shared lock for as long as it holds the open file, or a memory
  map of it (a map keeps a duplicate of the descriptor, and the lock with it). Eviction takes an
  exclusive lock without waiting, so an entry in use is skipped: removing it would corrupt
  nothing (an unlinked file stays readable to whoever has it open) but would free no space
  either, and the next job would compute it again.
- Opening an entry touches it: the least recently used is the one with the oldest mtime.
- Evictions and renames into place hold the folder's own lock (exclusive and shared), so an
  eviction never removes a file that was renamed over the one it checked.
"""

import fcntl
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"


@dataclass
class Freed:
    """What a clean-up removed: how many things, and their bytes."""

    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size

    def __iadd__(self, other: "Freed") -> "Freed":
        self.count += other.count
        self.bytes += other.bytes
        return self


class CappedFolder:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, name: str) -> Path:
        return self.root / name

    def open(self, name: str) -> BinaryIO | None:
        """The entry, open for reading and pinned, and touched; None when there is none.

        The caller keeps the file (or a memory map made from it) as long as it reads the entry,
        and closes it when done."""
        path = self.path(name)
        while True:
            try:
                f = path.open("rb")
            except FileNotFoundError:
                return None
            # Waits only while an eviction holds the entry, for the moment it takes to unlink.
            fcntl.flock(f, fcntl.LOCK_SH)
            if _same_file(f, path):
                with suppress(OSError):  # another user's file: it just keeps its age
                    os.utime(path)
                return f
            f.close()  # evicted or replaced between the open and the lock: look again

    def add(self, name: str, size: int, write: Callable[[BinaryIO], None]) -> BinaryIO:
        """A new entry of about `size` bytes: room is made for it first (least recently used
        entries evicted), `write` fills it, and it is renamed into place. Returns it open for
        reading and pinned, like `open`. An entry larger than the cap is still written (the
        caller needs it); it is the next to go once nobody uses it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.make_room(size)
        target = self.path(name)
        partial = target.with_name(
            f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        )
        # Under the folder's lock: an eviction removing emptied folders does not remove this
        # one between its creation and the partial file's.
        with self._folder_lock(fcntl.LOCK_SH):
            partial.parent.mkdir(parents=True, exist_ok=True)
            f = partial.open("w+b")
        try:
            fcntl.flock(f, fcntl.LOCK_EX)  # tells gc the writer is alive
            write(f)
            f.flush()
            with self._folder_lock(fcntl.LOCK_SH):
                os.replace(partial, self.path(name))
            # Readers may pin it now. Should an eviction slip into the moment the lock is
            # converted, it unlinks a file this descriptor still reads whole.
            fcntl.flock(f, fcntl.LOCK_SH)
        except BaseException:
            f.close()
            partial.unlink(missing_ok=True)
            raise
        with suppress(OSError):
            os.utime(self.path(name))
        return f

    def make_room(self, size: int = 0) -> Freed:
        """Evict least recently used entries not in use until the folder's bytes (entries and
        files being written) plus `size` fit the cap."""
        freed = Freed()
        if not self.root.is_dir():
            return freed
        with self._folder_lock(fcntl.LOCK_EX):
            entries = []
            total = size
            for path, stat in _files(self.root):
                total += stat.st_size
                if not path.name.startswith("."):
                    entries.append((stat.st_mtime_ns, path, stat.st_size))
            for _, path, entry_size in sorted(entries):
                if total <= self.max_bytes:
                    break
                if _evict(path):
                    total -= entry_size
                    freed.add(entry_size)
                    self._remove_empty_folders(path.parent)
        if total > self.max_bytes:
            log.warning(
                "%s: %d bytes wanted over a cap of %d; the entries left are in use",
                self.root,
                total,
                self.max_bytes,
            )
        return freed

    def sweep_partials(self) -> Freed:
        """Remove partial files whose writer died (nobody holds their lock)."""
        freed = Freed()
        if not self.root.is_dir():
            return freed
        for path, stat in _files(self.root):
            if path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX) and _evict(path):
                freed.add(stat.st_size)
        return freed

    def _remove_empty_folders(self, folder: Path) -> None:
        """Remove `folder` and its parents up to the root while they are empty (the caller
        holds the folder's exclusive lock)."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:  # not empty, or gone
                return
            folder = folder.parent

    @contextmanager
    def _folder_lock(self, operation: int) -> Iterator[None]:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)


def _files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every file under `root`, in its folders too."""
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            with suppress(FileNotFoundError):
                info = path.lstat()
                if S_ISREG(info.st_mode):
                    yield path, info


def _same_file(f: BinaryIO, path: Path) -> bool:
    try:
        return os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _evict(path: Path) -> bool:
    """Remove the file unless someone holds a lock on it (a reader or a live writer)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not _same_file(f, path):
            return False
        path.unlink()
        return True
