"""The soft-label store computes teacher logits once and memory-maps them afterwards."""

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from worker.softlabels import SoftLabelStore, StoredLogits, TopKLogits, bytes_per_example


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


# Top-k entries. The stored logits and log-sum-exp are float32, so the k probabilities come back
# to within a few float32 steps (about 3e-6 relative, measured, through a float32 softmax):
# RTOL is 50 times tighter than float16's own precision (2^-11 = 4.9e-4), which float16 logits
# would miss (about 6e-3 here).
RTOL = 1e-5
CPU = torch.device("cpu")


def teacher_logits(rows: int, classes: int) -> torch.Tensor:
    return torch.randn(rows, classes, generator=torch.Generator().manual_seed(0)) * 4


def test_top_k_keeps_the_teachers_probabilities_and_spreads_the_rest_evenly(
    tmp_path: Path,
) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**6)
    logits = teacher_logits(60, 1000)
    key = store.key("teacher-sha", "data-fingerprint", "normalized-v1", top_k=10)
    entry, reused = store.get_or_write(key, (60, 1000), lambda: logits.split(16))
    assert not reused and isinstance(entry, TopKLogits)
    assert (entry.shape, entry.k) == ((60, 1000), 10)

    read = StoredLogits(entry, CPU)(torch.tensor([5, 0, 59, 5]))
    assert read.dtype == torch.float32 and read.shape == (4, 1000)
    got = torch.softmax(read, dim=1).double()
    teacher = torch.softmax(logits[[5, 0, 59, 5]].double(), dim=1)
    top = torch.topk(teacher, 10, dim=1).indices
    assert torch.allclose(got.gather(1, top), teacher.gather(1, top), rtol=RTOL, atol=0)

    rest = torch.ones_like(got, dtype=torch.bool).scatter_(1, top, False)
    leftover = 1 - teacher.gather(1, top).sum(dim=1, keepdim=True)
    assert torch.allclose(got[rest].view(4, 990), (leftover / 990).expand(4, 990), rtol=1e-4)
    assert torch.allclose(got.sum(dim=1), torch.ones(4, dtype=torch.float64))


def test_when_the_top_k_hold_all_the_mass_the_other_logits_stay_finite(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**6)
    logits = torch.full((4, 50), -300.0)
    logits[:, :3] = torch.tensor([2.0, 1.0, 0.0])
    entry, _ = store.get_or_compute(store.key("t", "d", "p", top_k=3), lambda: logits)
    read = StoredLogits(entry, CPU)(torch.arange(4))
    assert torch.isfinite(read).all()
    probabilities = torch.softmax(read, dim=1)
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), dim=0)
    assert torch.allclose(probabilities[:, :3].double(), expected.expand(4, 3), rtol=RTOL)
    assert float(probabilities[:, 3:].max()) < 1e-30


def test_k_at_least_the_class_count_stores_every_logit(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**6)
    logits = teacher_logits(20, 10)
    for k in (10, 12):
        entry, _ = store.get_or_write(store.key("t", "d", "p", top_k=k), (20, 10), lambda: [logits])
        assert isinstance(entry, np.memmap)
        assert entry.dtype == np.float16 and entry.shape == (20, 10)
        assert torch.allclose(StoredLogits(entry, CPU)(torch.arange(20)), logits, atol=1e-2)


def test_the_key_says_k_and_the_tail_samples() -> None:
    asked = [(None, None), (10, None), (32, None), (32, 7)]
    keys = [SoftLabelStore.key("t", "d", "p", k, m) for k, m in asked]
    assert len(set(keys)) == 4
    assert [SoftLabelStore.top_k_of(key) for key in keys] == [(None, 0), (10, 0), (32, 0), (32, 7)]


def test_tail_samples_are_drawn_from_the_teachers_tail_the_same_however_written(
    tmp_path: Path,
) -> None:
    """Each row's samples are classes outside its top k, drawn in proportion to the
    teacher's probabilities there; the entry's bytes do not depend on how the labelling
    was batched."""
    store = SoftLabelStore(tmp_path, max_bytes=10**8)
    one_row = teacher_logits(1, 30)[0] / 2
    logits = one_row.expand(4000, 30).contiguous()
    key = store.key("t", "d", "p", top_k=4, tail_samples=8)
    entry, _ = store.get_or_write(key, (4000, 30), lambda: logits.split(300))
    assert isinstance(entry, TopKLogits) and entry.tail_samples == 8
    assert entry.records.dtype.itemsize == 4 + 4 * 4 + 4 * 1 + 8 * 1  # lse, k values, uint8s
    rows = entry.rows(np.arange(4000), CPU)
    assert rows.tail is not None and rows.tail.shape == (4000, 8)
    p = torch.softmax(one_row.double(), dim=0)
    top = set(p.topk(4).indices.tolist())
    drawn = torch.bincount(rows.tail.flatten(), minlength=30).double() / rows.tail.numel()
    assert not top & set(rows.tail.unique().tolist())
    tail = p.clone()
    tail[list(top)] = 0
    assert torch.allclose(drawn, tail / tail.sum(), atol=0.01)

    again = SoftLabelStore(tmp_path / "again", max_bytes=10**8)
    other, _ = again.get_or_write(key, (4000, 30), lambda: logits.split(77))
    assert isinstance(other, TopKLogits)
    assert other.records.tobytes() == entry.records.tobytes()


def test_a_written_top_k_entry_is_reused(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**6)
    logits = teacher_logits(30, 100)
    calls = []

    def chunks() -> list[torch.Tensor]:
        calls.append(1)
        return list(logits.split(7))

    key = store.key("t", "d", "p", top_k=5)
    first, reused_first = store.get_or_write(key, (30, 100), chunks)
    second, reused_second = store.get_or_write(key, (30, 100), chunks)
    assert (reused_first, reused_second, len(calls)) == (False, True, 1)
    assert list(tmp_path.iterdir()) == [store.path(key)]
    index = torch.arange(30)
    assert torch.equal(StoredLogits(first, CPU)(index), StoredLogits(second, CPU)(index))


def test_an_entry_written_before_top_k_existed_is_still_read(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**6)
    logits = teacher_logits(100, 10)
    key = store.key("t", "d", "p")
    tmp_path.mkdir(exist_ok=True)
    np.save(store.path(key), logits.numpy().astype(np.float16))  # as np.save wrote them
    entry, reused = store.get_or_compute(key, lambda: torch.zeros(100, 10))
    assert reused and isinstance(entry, np.memmap)
    assert torch.allclose(StoredLogits(entry, CPU)(torch.arange(100)), logits, atol=1e-2)


def test_a_top_k_entry_is_smaller_by_its_record_size(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**7)
    logits = teacher_logits(50, 1000)
    full, _ = store.get_or_compute(store.key("t", "d", "p"), lambda: logits)
    top, _ = store.get_or_compute(store.key("t", "d", "p", top_k=10), lambda: logits)
    assert isinstance(full, np.memmap) and isinstance(top, TopKLogits)
    # float16 logits: 2 bytes a class; a top-k record: a float32 log-sum-exp, 10 float32
    # logits, 10 uint16 classes (1000 classes fit in 16 bits).
    assert bytes_per_example(1000) == 1000 * 2
    assert bytes_per_example(1000, 10) == 4 + 10 * 4 + 10 * 2
    assert store.path(store.key("t", "d", "p")).stat().st_size - full.offset == 50 * 2000
    top_path = store.path(store.key("t", "d", "p", top_k=10))
    assert isinstance(top.records, np.memmap)
    assert top_path.stat().st_size - top.records.offset == 50 * 64


def test_a_mapped_top_k_entry_is_pinned_until_let_go(tmp_path: Path) -> None:
    store = SoftLabelStore(tmp_path, max_bytes=10**6)
    key = store.key("t", "d", "p", top_k=3)
    entry, _ = store.get_or_compute(key, lambda: teacher_logits(20, 10))
    reader = StoredLogits(entry, CPU)
    store.folder.make_room(10**7)  # more than the cap: evict all that can go
    assert store.path(key).exists()
    del entry, reader
    gc.collect()
    store.folder.make_room(10**7)
    assert not store.path(key).exists()
