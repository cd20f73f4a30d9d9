"""Streaming .npy reading for uploads: the header is parsed as a literal (never unpickled) and
the data copied in bounded chunks into a prepared .npy, checked as it goes."""

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from app.files.formats import CheckError

CHUNK_BYTES = 4 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype[Any]
    header_bytes: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def nbytes_as(self, dtype: "np.dtype[Any] | type") -> int:
        """Bytes of this array converted to `dtype`."""
        return math.prod(self.shape) * np.dtype(dtype).itemsize


def read_header(fp: IO[bytes], what: str) -> NpyHeader:
    """Parse a .npy header; refuse anything that is not a plain numeric or string array."""
    try:
        version = npformat.read_magic(fp)
    except ValueError:
        raise CheckError(f"{what} is not a .npy array (pickles are never loaded)") from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(
                fp, max_header_size=MAX_HEADER_BYTES
            )
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(
                fp, max_header_size=MAX_HEADER_BYTES
            )
        else:
            raise CheckError(f"{what}: .npy format version {version} is not supported")
    except (ValueError, SyntaxError, TypeError) as exc:
        raise CheckError(f"{what} has an unreadable .npy header: {exc}") from None
    if dtype.hasobject:
        raise CheckError(
            f"{what} holds Python objects (dtype object): pickles are never loaded; "
            "save plain numeric arrays"
        )
    if dtype.names is not None or dtype.subdtype is not None:
        raise CheckError(f"{what} has a structured dtype {dtype}; save plain numeric arrays")
    if any(d < 0 for d in shape):
        raise CheckError(f"{what} has a negative dimension in its shape {shape}")
    header_bytes = fp.tell() if hasattr(fp, "tell") else 0
    return NpyHeader(tuple(int(d) for d in shape), bool(fortran), dtype, header_bytes)


def read_exact(fp: IO[bytes], n: int, what: str) -> bytes:
    parts = []
    left = n
    while left > 0:
        chunk = fp.read(min(left, CHUNK_BYTES))
        if not chunk:
            raise CheckError(f"{what} is truncated: its header promises more data than it holds")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def iter_rows(
    fp: IO[bytes], header: NpyHeader, what: str, scratch: Path
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, C-ordered block of rows) over the array's first axis."""
    shape = header.shape
    n = shape[0]
    row_items = math.prod(shape[1:])
    row_bytes = max(1, row_items * header.dtype.itemsize)
    rows_per_chunk = max(1, CHUNK_BYTES // row_bytes)
    if not header.fortran_order or len(shape) < 2:
        for start in range(0, n, rows_per_chunk):
            k = min(rows_per_chunk, n - start)
            data = read_exact(fp, k * row_items * header.dtype.itemsize, what)
            yield start, np.frombuffer(data, dtype=header.dtype).reshape((k, *shape[1:]))
        return
    # Fortran order: the bytes are the C-ordered transpose. Copy them to disk first, then read
    # row blocks of the transpose (memory stays bounded by the chunk size).
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        reversed_shape = tuple(reversed(shape))
        staged = np.lib.format.open_memmap(
            Path(tmp) / "f.npy", mode="w+", dtype=header.dtype, shape=reversed_shape
        )
        flat = staged.reshape(-1)
        total = flat.size
        step = max(1, CHUNK_BYTES // header.dtype.itemsize)
        for start in range(0, total, step):
            k = min(step, total - start)
            data = read_exact(fp, k * header.dtype.itemsize, what)
            flat[start : start + k] = np.frombuffer(data, dtype=header.dtype)
        transposed = staged.T
        for start in range(0, n, rows_per_chunk):
            yield start, np.ascontiguousarray(transposed[start : start + rows_per_chunk])
        del flat, staged, transposed


def first_bad_row(block: np.ndarray) -> int | None:
    """Index in `block` of the first row holding NaN or infinity, or None."""
    if block.dtype.kind not in "fc":
        return None
    finite = np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
    if finite.all():
        return None
    return int(np.argmin(finite))


def copy_array(
    fp: IO[bytes],
    header: NpyHeader,
    out: Path,
    out_dtype: np.dtype[Any] | type,
    what: str,
    *,
    check: Callable[[int, np.ndarray], None] | None = None,
    finite: bool = False,
) -> None:
    """Copy the array after `header` in `fp` into a C-ordered .npy at `out` of `out_dtype`.

    `finite` refuses NaN / infinity (naming the row); `check(first_row, block)` sees every
    block of source rows before it is written."""
    target = np.lib.format.open_memmap(out, mode="w+", dtype=out_dtype, shape=header.shape)
    try:
        for start, block in iter_rows(fp, header, what, out.parent):
            if finite:
                bad = first_bad_row(block)
                if bad is not None:
                    raise CheckError(f"{what} row {start + bad} holds NaN or infinity")
            if check is not None:
                check(start, block)
            converted = block.astype(out_dtype)
            if finite:
                bad = first_bad_row(converted)
                if bad is not None:
                    raise CheckError(
                        f"{what} row {start + bad} overflows {np.dtype(out_dtype).name}"
                    )
            target[start : start + block.shape[0]] = converted
        target.flush()
    finally:
        del target
