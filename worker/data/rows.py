"""Example rows in memory or in .npy files on disk, read a few rows at a time.

A dataset larger than the worker's memory budget is never loaded whole: `NpyRows` reads the
rows a batch needs with `os.preadv` straight into a preallocated buffer (sorted, runs of
consecutive rows in one call). Unlike `np.memmap`, pages read this way stay in the page cache
and do not count in the process's resident memory. `Subset` and `Concat` describe splits and
transfer sets without copying.
"""

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np


class Rows(Protocol):
    """A 2-D-or-more array of examples that can be read by row index."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def __len__(self) -> int: ...

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (any order, repeats allowed), in that order, in the raw dtype."""
        ...

    def fingerprint(self, digest: "hashlib._Hash") -> None:
        """Feed what identifies these rows' content to `digest`."""
        ...


class ArrayRows:
    """Rows of an array already in memory (builtin datasets)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def __len__(self) -> int:
        return len(self.array)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows]

    def fingerprint(self, digest: "hashlib._Hash") -> None:
        for chunk in iter_chunks(self):
            digest.update(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())


class NpyRows:
    """Rows of a plain .npy file (C order, no pickle), read with pread on demand.

    `identity` names the content for soft-label keys (e.g. the uploaded file's sha256 and id);
    without one the fingerprint hashes the rows themselves.
    """

    def __init__(self, path: Path, identity: str | None = None) -> None:
        self.path = path
        self.identity = identity
        self._fd: int | None = None
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"{path.name}: unsupported .npy version {version}")
            self.offset = f.tell()
        if fortran or dtype.hasobject or len(shape) < 1:
            raise ValueError(f"{path.name}: not a plain C-order numeric array")
        self._shape = tuple(int(d) for d in shape)
        self._dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self._shape[1:], dtype=np.int64)) * self._dtype.itemsize
        expected = self.offset + self.row_bytes * self._shape[0]
        if path.stat().st_size < expected:
            raise ValueError(f"{path.name}: the file is shorter than its header says")

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def __len__(self) -> int:
        return self._shape[0]

    def _file(self) -> int:
        # Opened on first use; pread keeps no file position, so threads can share it.
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(rows) and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        rows = np.where(rows < 0, rows + n, rows)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        buffer = np.empty((len(rows), *self._shape[1:]), dtype=self._dtype)
        if len(rows) == 0 or self.row_bytes == 0:
            return buffer
        flat = memoryview(buffer.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        # Runs of consecutive (or repeated) rows: one read per run of distinct consecutive rows.
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        fd = self._file()
        start = 0
        for end in [*breaks.tolist(), len(ordered)]:
            first = int(ordered[start])
            count = end - start
            self._read_into(fd, flat[start * self.row_bytes : end * self.row_bytes], first, count)
            start = end
        result = np.empty_like(buffer)
        result[order] = buffer
        return result

    def _read_into(self, fd: int, target: memoryview, first: int, count: int) -> None:
        offset = self.offset + first * self.row_bytes
        done, size = 0, count * self.row_bytes
        while done < size:
            got = os.preadv(fd, [target[done:]], offset + done)
            if got <= 0:
                raise OSError(f"{self.path.name}: unexpected end of file")
            done += got

    def fingerprint(self, digest: "hashlib._Hash") -> None:
        if self.identity is None:
            for chunk in iter_chunks(self):
                digest.update(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
        else:
            digest.update(f"npy:{self.identity}:{self._shape}".encode())


class Subset:
    """Rows `index` of `base`, in that order."""

    def __init__(self, base: Rows, index: np.ndarray) -> None:
        self.base = base
        self.index = np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def __len__(self) -> int:
        return len(self.index)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.base.take(self.index[np.asarray(rows, dtype=np.int64)])

    def fingerprint(self, digest: "hashlib._Hash") -> None:
        if _has_identity(self.base):
            self.base.fingerprint(digest)
            digest.update(b"rows:")
            digest.update(self.index.tobytes())
        else:
            for chunk in iter_chunks(self):
                digest.update(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())


class Concat:
    """The rows of `parts`, one after the other (same example shape)."""

    def __init__(self, parts: list[Rows]) -> None:
        self.parts = [p for p in parts if len(p)] or parts[:1]
        shapes = {tuple(p.shape[1:]) for p in self.parts}
        if len(shapes) > 1:
            raise ValueError(f"cannot concatenate rows of shapes {sorted(shapes)}")
        self.starts = np.cumsum([0, *(len(p) for p in self.parts)])

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.starts[-1]), *self.parts[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(*(p.dtype for p in self.parts))

    def __len__(self) -> int:
        return int(self.starts[-1])

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        part_of = np.searchsorted(self.starts, rows, side="right") - 1
        for i, part in enumerate(self.parts):
            mask = part_of == i
            if mask.any():
                out[mask] = part.take(rows[mask] - self.starts[i])
        return out

    def fingerprint(self, digest: "hashlib._Hash") -> None:
        for part in self.parts:
            digest.update(f"part:{len(part)}:".encode())
            part.fingerprint(digest)


def _has_identity(rows: Rows) -> bool:
    if isinstance(rows, NpyRows):
        return rows.identity is not None
    if isinstance(rows, Subset):
        return _has_identity(rows.base)
    if isinstance(rows, Concat):
        return all(_has_identity(p) for p in rows.parts)
    return False


def as_rows(array: "np.ndarray | Rows") -> Rows:
    return ArrayRows(array) if isinstance(array, np.ndarray) else array


def chunk_rows(row_bytes: int, target_bytes: int = 4 << 20, most: int = 1024) -> int:
    """Rows per chunk: `most`, or fewer when rows are large (chunks of about target_bytes)."""
    return max(1, min(most, target_bytes // max(row_bytes, 1)))


def iter_chunks(rows: Rows, size: int | None = None) -> Iterator[np.ndarray]:
    """The rows in order, `size` at a time (raw dtype)."""
    if size is None:
        size = chunk_rows(int(np.prod(rows.shape[1:], dtype=np.int64)) * 4)
    for start in range(0, len(rows), size):
        yield rows.take(np.arange(start, min(start + size, len(rows))))


def row_digests(rows: Rows) -> Iterator[bytes]:
    """A 16-byte digest of every row's float32 bytes, in order."""
    for chunk in iter_chunks(rows):
        flat = np.ascontiguousarray(chunk, dtype=np.float32).reshape(len(chunk), -1)
        for row in flat:
            yield hashlib.blake2b(row.tobytes(), digest_size=16).digest()
