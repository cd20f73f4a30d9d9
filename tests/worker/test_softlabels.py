"""The soft-label store computes teacher logits once and memory-maps them afterwards."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from worker.softlabels import SoftLabelStore, StoredLogits


def test_computes_once_then_reads_the_stored_array(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**6)
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


ROOT = Path(__file__).resolve().parents[2]
ENTRY_BYTES = 128 + 100 * 10 * 2  # the .npy header and 100 x 10 float16 logits


def backdate(store: SoftLabelStore, key: str, seconds: int) -> None:
    when = time.time() - seconds
    os.utime(store.path(key), (when, when))


def test_a_write_over_the_cap_evicts_the_least_recently_read_entry(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=2 * ENTRY_BYTES)
    first, second, third = (store.key(f"teacher-{i}", "data", "p") for i in range(3))
    store.get_or_compute(first, lambda: torch.zeros(100, 10))
    store.get_or_compute(second, lambda: torch.ones(100, 10))
    backdate(store, first, 200)
    backdate(store, second, 100)
    # Reading the first (and letting it go) makes the second the least recently used.
    assert store.get_or_compute(first, lambda: torch.full((100, 10), 7.0))[1]
    store.get_or_compute(third, lambda: torch.ones(100, 10))
    assert sorted(tmp_path.iterdir()) == sorted([store.path(first), store.path(third)])
    again, reused = store.get_or_compute(second, lambda: torch.full((100, 10), 2.0))
    assert not reused and float(again[0, 0]) == 2.0  # computed afresh


def run_child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


# A worker process: it maps the entry (computing it if needed), says "ready", and once its
# stdin closes says whether the logits it reads are still the teacher's.
WORKER = """
import sys, time, torch
from pathlib import Path
from worker.softlabels import SoftLabelStore
store = SoftLabelStore(Path(sys.argv[1]), int(sys.argv[2]))
logits = torch.arange(1000, dtype=torch.float32).reshape(100, 10) % 97
def compute():
    time.sleep(float(sys.argv[3]))
    return logits
array, _ = store.get_or_compute("k", compute)
print("ready", flush=True)
sys.stdin.read()
print(bool((torch.from_numpy(array[:]).float() == logits).all()), flush=True)
"""


def test_an_entry_a_job_has_mapped_is_neither_evicted_nor_changed(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=2 * ENTRY_BYTES)
    job = run_child(WORKER, str(tmp_path), str(2 * ENTRY_BYTES), "0")
    assert job.stdout is not None and job.stdin is not None
    assert job.stdout.readline().strip() == "ready"
    backdate(store, "k", 1000)  # the least recently used
    for i in range(3):
        store.get_or_compute(f"other-{i}", lambda: torch.zeros(100, 10))
    assert store.path("k").exists()
    job.stdin.close()
    assert job.stdout.readline().strip() == "True"
    assert job.wait(timeout=60) == 0
    # The job is over: the entry can go now.
    store.get_or_compute("last", lambda: torch.zeros(100, 10))
    assert not store.path("k").exists()
    assert len(list(tmp_path.iterdir())) == 2


def test_two_workers_writing_one_entry_at_once_both_read_it_whole(tmp_path: Path) -> None:
    jobs = [run_child(WORKER, str(tmp_path), str(10 * ENTRY_BYTES), "1") for _ in range(2)]
    for job in jobs:
        assert job.stdout is not None and job.stdin is not None
        assert job.stdout.readline().strip() == "ready"
    for job in jobs:
        assert job.stdin is not None and job.stdout is not None
        job.stdin.close()
        assert job.stdout.readline().strip() == "True"
        assert job.wait(timeout=60) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["k.npy"]  # one entry, no partial left
