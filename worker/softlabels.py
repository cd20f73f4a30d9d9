"""The soft-label store: teacher logits computed once per (teacher, inputs, preprocessing)
and kept as one contiguous float16 array, memory-mapped when read.

Entries live in a capped folder (app/capped_folder.py): writing one evicts the least recently
used entries until it fits DISTILLERY_SOFT_LABEL_STORE_BYTES, and an entry a job has mapped is
pinned (never evicted) until the job lets go of it, even by dying.
"""

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from app.capped_folder import CappedFolder
from app.settings import Settings

# Room for an .npy header (np.save pads it to a multiple of 64 bytes).
HEADER_BYTES = 128


class SoftLabelStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.folder = CappedFolder(root, max_bytes)

    @classmethod
    def for_settings(cls, settings: Settings) -> "SoftLabelStore":
        return cls(settings.soft_label_root, settings.soft_label_store_bytes)

    @staticmethod
    def key(teacher_sha256: str, data_fingerprint: str, preprocessing: str) -> str:
        parts = f"{teacher_sha256}:{data_fingerprint}:{preprocessing}"
        return hashlib.sha256(parts.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder.path(_name(key))

    def get_or_compute(
        self, key: str, compute: Callable[[], torch.Tensor]
    ) -> tuple[np.ndarray, bool]:
        """The stored logits (memory-mapped) and whether they were already there."""

        def one_chunk() -> Iterator[np.ndarray]:
            yield compute().float().numpy()

        return self.get_or_write(key, None, one_chunk)

    def get_or_write(
        self,
        key: str,
        shape: tuple[int, int] | None,
        chunks: Callable[[], Iterable["np.ndarray | torch.Tensor"]],
    ) -> tuple[np.ndarray, bool]:
        """Like get_or_compute, with the logits given batch by batch (rows in order) and
        written as they come: `shape` (rows, classes) is the whole array's; None means one
        chunk holds it all. The array pins its entry until it is garbage-collected."""
        stored = self.folder.open(_name(key))
        if stored is not None:
            return _mapped(stored), True
        write: Callable[[BinaryIO], None]
        if shape is None:
            (only,) = list(chunks())
            array = _float16(only)
            size = array.nbytes

            def write(f: BinaryIO) -> None:
                np.save(f, array)

        else:
            size = shape[0] * shape[1] * np.dtype(np.float16).itemsize

            def write(f: BinaryIO) -> None:
                _write_streamed(f, shape, chunks())

        return _mapped(self.folder.add(_name(key), size + HEADER_BYTES, write)), False


def _name(key: str) -> str:
    return f"{key}.npy"


def _mapped(f: BinaryIO) -> np.ndarray:
    """A read-only memory map of the .npy file `f`, which it then closes: the map keeps its
    own duplicate of the descriptor, and with it the entry's pin."""
    with f:
        f.seek(0)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        return np.memmap(
            f,
            dtype=dtype,
            mode="r",
            shape=shape,
            offset=f.tell(),
            order="F" if fortran_order else "C",
        )


def _float16(chunk: "np.ndarray | torch.Tensor") -> np.ndarray:
    if isinstance(chunk, torch.Tensor):
        chunk = chunk.detach().cpu().float().numpy()
    return np.ascontiguousarray(chunk, dtype=np.float16)


def _write_streamed(
    f: BinaryIO, shape: tuple[int, int], chunks: Iterable["np.ndarray | torch.Tensor"]
) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False}
    rows = 0
    np.lib.format.write_array_header_2_0(f, {**header, "shape": shape})
    for chunk in chunks:
        array = _float16(chunk)
        if array.ndim != 2 or array.shape[1] != shape[1]:
            raise ValueError(f"teacher logits of shape {array.shape}; expected (n, {shape[1]})")
        f.write(array.tobytes())
        rows += len(array)
    if rows != shape[0]:
        raise ValueError(f"the teacher gave {rows} rows of logits for {shape[0]} examples")


class StoredLogits:
    """Reads the teacher logits of a batch of example indices from the store."""

    def __init__(self, array: np.ndarray, device: torch.device) -> None:
        self.array = array
        self.device = device

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        rows = self.array[index.cpu().numpy()]
        return torch.from_numpy(rows).to(self.device, non_blocking=True).float()
