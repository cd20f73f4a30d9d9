"""The soft-label store computes teacher logits once and memory-maps them afterwards."""

from pathlib import Path

import numpy as np
import torch

from worker.softlabels import SoftLabelStore, StoredLogits


def test_computes_once_then_reads_the_stored_array(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path)
    logits = torch.randn(100, 10)
    calls = []

    def compute() -> torch.Tensor:
        calls.append(1)
        return logits

    key = store.key("teacher-sha", "data-fingerprint", "normalized-v1")
    _, reused_first = store.get_or_compute(key, compute)
    second, reused_second = store.get_or_compute(key, compute)
    assert (reused_first, reused_second) == (False, True)
    assert len(calls) == 1
    assert isinstance(second, np.memmap)
    assert second.dtype == np.float16 and second.shape == (100, 10)
    assert list(tmp_path.iterdir()) == [store.path(key)]

    read = StoredLogits(second, torch.device("cpu"))(torch.tensor([3, 7, 7]))
    assert read.dtype == torch.float32
    assert torch.allclose(read, logits[[3, 7, 7]], atol=1e-2)


def test_a_different_teacher_or_dataset_gets_a_different_key() -> None:
    keys = {
        SoftLabelStore.key("t1", "d1", "p"),
        SoftLabelStore.key("t2", "d1", "p"),
        SoftLabelStore.key("t1", "d2", "p"),
        SoftLabelStore.key("t1", "d1", "q"),
    }
    assert len(keys) == 4
