"""The soft-label store: teacher logits computed once per (teacher, inputs, preprocessing)
and kept as one contiguous float16 array, memory-mapped when read."""

import hashlib
import os
from collections.abc import Callable
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
        path = self.path(key)
        if path.exists():
            return np.load(path, mmap_mode="r"), True
        logits = compute().to(torch.float16).numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
        np.save(partial, logits)
        os.replace(partial, path)
        return np.load(path, mmap_mode="r"), False


class StoredLogits:
    """Reads the teacher logits of a batch of example indices from the store."""

    def __init__(self, array: np.ndarray, device: torch.device) -> None:
        self.array = array
        self.device = device

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        rows = self.array[index.cpu().numpy()]
        return torch.from_numpy(rows).to(self.device, non_blocking=True).float()
