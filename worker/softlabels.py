"""The soft-label store: teacher logits computed once per (teacher, inputs, preprocessing)
and kept as one contiguous float16 array, memory-mapped when read."""

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch


class SoftLabelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def key(teacher_sha256: str, data_fingerprint: str, preprocessing: str) -> str:
        parts = f"{teacher_sha256}:{data_fingerprint}:{preprocessing}"
        return hashlib.sha256(parts.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

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
        chunk holds it all."""
        path = self.path(key)
        if path.exists():
            return np.load(path, mmap_mode="r"), True
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
        try:
            if shape is None:
                (only,) = list(chunks())
                np.save(partial, _float16(only))
            else:
                _write_streamed(partial, shape, chunks())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return np.load(path, mmap_mode="r"), False


def _float16(chunk: "np.ndarray | torch.Tensor") -> np.ndarray:
    if isinstance(chunk, torch.Tensor):
        chunk = chunk.detach().cpu().float().numpy()
    return np.ascontiguousarray(chunk, dtype=np.float16)


def _write_streamed(
    path: Path, shape: tuple[int, int], chunks: Iterable["np.ndarray | torch.Tensor"]
) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False}
    rows = 0
    with path.open("wb") as f:
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
