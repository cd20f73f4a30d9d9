"""`file:<id>` datasets: read from the prepared arrays; large ones stay on disk."""

from pathlib import Path

import numpy as np
import pytest
import torch

from app.files.splits import DESCRIPTION, fixed_test_split
from app.settings import Settings
from tests.worker.uploads import add_dataset, clusters
from worker.data import DatasetMismatch, load_dataset, prepare


def spec(name: str, transfer: str | None = None) -> dict:
    out: dict = {"name": name, "options": {}, "val_fraction": 0.2}
    if transfer:
        out["transfer"] = {"name": transfer, "options": {}}
    return out


def test_a_file_with_its_own_test_split(settings: Settings, tmp_path: Path) -> None:
    x, y = clusters(100)
    x_test, y_test = clusters(30, seed=1)
    file_id = add_dataset(settings, tmp_path, x, y, x_test, y_test, ["a", "b", "c"])
    data = prepare(spec(f"file:{file_id}"), seed=0, settings=settings)
    assert (len(data.train), len(data.val), len(data.test)) == (80, 20, 30)
    assert torch.equal(data.test.head(30), torch.from_numpy(x_test))
    assert torch.equal(data.y_test, torch.from_numpy(y_test))
    assert data.class_names == ["a", "b", "c"] and data.num_classes == 3
    assert data.test_split == "the file's own x_test / y_test"
    assert data.in_memory


def test_a_file_without_test_arrays_gets_the_fixed_split(
    settings: Settings, tmp_path: Path
) -> None:
    x, y = clusters(100)
    file_id = add_dataset(settings, tmp_path, x, y)
    raw = load_dataset(f"file:{file_id}", {}, settings)
    train_rows, test_rows = fixed_test_split(100)
    assert np.array_equal(raw.x_test.take(np.arange(len(test_rows))), x[test_rows])
    assert raw.y_test is not None and np.array_equal(raw.y_test, y[test_rows])
    data = prepare(spec(f"file:{file_id}"), seed=0, settings=settings)
    assert data.test_split == DESCRIPTION
    assert len(data.test) == len(test_rows) and len(data.train) + len(data.val) == len(train_rows)
    assert data.class_names == ["0", "1", "2"]
    # The rows of a logits file the student's examples read: train rows of x, in x's order.
    assert set(data.logit_rows.tolist()) <= set(train_rows.tolist())
    assert data.test_logit_rows is not None and np.array_equal(data.test_logit_rows, test_rows)


def test_an_unlabelled_file_is_a_transfer_set_only(settings: Settings, tmp_path: Path) -> None:
    x, y = clusters(100)
    unlabelled = add_dataset(settings, tmp_path, clusters(40, seed=3)[0])
    with pytest.raises(DatasetMismatch, match="no labels"):
        prepare(spec(f"file:{unlabelled}"), seed=0, settings=settings)
    labelled = add_dataset(settings, tmp_path, x, y, *clusters(30, seed=1))
    data = prepare(spec(f"file:{labelled}", f"file:{unlabelled}"), seed=0, settings=settings)
    assert len(data.transfer) == 40 and len(data.distill) == 80 + 40
    assert (data.y_distill[80:] == -1).all()
    # Logits rows: the dataset's 100 x rows, then the transfer file's 40.
    assert data.logit_source_rows == 140
    assert np.array_equal(data.logit_rows[80:], np.arange(100, 140))


def test_a_missing_file_names_the_field(settings: Settings) -> None:
    with pytest.raises(DatasetMismatch) as info:
        prepare(spec("file:file_nope", None), seed=0, settings=settings)
    assert info.value.param == "dataset.name"
    with pytest.raises(DatasetMismatch) as info:
        prepare(spec("digits", "file:file_nope"), seed=0, settings=settings)
    assert info.value.param == "dataset.transfer.name"


def test_a_dataset_over_the_memory_budget_is_read_from_disk_with_the_same_splits(
    settings: Settings, tmp_path: Path
) -> None:
    x, y = clusters(600, shape=(3, 8, 8), uint8=True)
    x_test, y_test = clusters(100, shape=(3, 8, 8), seed=1, uint8=True)
    dataset = add_dataset(settings, tmp_path, x, y, x_test, y_test)
    # The transfer set repeats 10 test rows: they are dropped.
    transfer_x = np.concatenate([clusters(50, (3, 8, 8), seed=2, uint8=True)[0], x_test[:10]])
    transfer = add_dataset(settings, tmp_path, transfer_x)
    job = spec(f"file:{dataset}", f"file:{transfer}")
    memory = prepare(job, seed=0, settings=settings)
    disk = prepare(job, seed=0, settings=settings.model_copy(update={"worker_memory_bytes": 4096}))
    assert memory.in_memory and not disk.in_memory
    assert memory.transfer_dropped == disk.transfer_dropped == 10
    assert memory.fingerprint() == disk.fingerprint()
    assert torch.allclose(memory.mean, disk.mean) and torch.allclose(memory.std, disk.std)
    assert memory.mean.shape == (3, 1, 1)
    reference = torch.from_numpy(x.astype(np.float32))
    index = torch.tensor([5, 0, 17, 17, 300])
    cpu = torch.device("cpu")
    assert torch.equal(disk.distill.batch(index, cpu), memory.distill.batch(index, cpu))
    assert disk.distill.batch(index, cpu).dtype == torch.float32
    chunks = torch.cat(list(disk.test.chunks(32)))
    assert torch.equal(chunks, torch.from_numpy(x_test.astype(np.float32)))
    # Statistics over the training rows, per channel, as numpy computes them.
    train = reference[memory.train.rows.index]  # type: ignore[attr-defined]
    expected = train.double().transpose(0, 1).reshape(3, -1)
    assert torch.allclose(disk.mean.flatten().double(), expected.mean(1), atol=1e-4)
    assert torch.allclose(disk.std.flatten().double(), expected.std(1), atol=1e-4)


def test_the_fingerprint_names_the_file_and_its_rows(settings: Settings, tmp_path: Path) -> None:
    x, y = clusters(100)
    first = add_dataset(settings, tmp_path, x, y)
    second = add_dataset(settings, tmp_path, x, y)  # same bytes, another file
    prints = {
        prepare(spec(f"file:{first}"), seed=0, settings=settings).fingerprint(),
        prepare(spec(f"file:{first}"), seed=1, settings=settings).fingerprint(),
        prepare(spec(f"file:{second}"), seed=0, settings=settings).fingerprint(),
    }
    assert len(prints) == 3


@pytest.mark.parametrize("with_test_rows", [False, True])
def test_a_one_row_transfer_file_is_all_transfer_examples(
    settings: Settings, tmp_path: Path, with_test_rows: bool
) -> None:
    x, y = clusters(100)
    labelled = add_dataset(settings, tmp_path, x, y, *clusters(30, seed=1))
    one = clusters(1, seed=3)[0]
    extra = clusters(2, seed=4)[0] if with_test_rows else None
    transfer = add_dataset(settings, tmp_path, one, x_test=extra)
    data = prepare(spec(f"file:{labelled}", f"file:{transfer}"), seed=0, settings=settings)
    rows = 3 if with_test_rows else 1
    assert len(data.transfer) == rows and len(data.distill) == 80 + rows
    expected = one if extra is None else np.concatenate([one, extra])
    assert torch.equal(data.transfer.head(rows), torch.from_numpy(expected))
    assert data.logit_transfer_rows == rows
    assert np.array_equal(data.logit_rows[80:], np.arange(100, 100 + rows))


def test_a_file_of_another_tenant_is_refused(settings: Settings, tmp_path: Path) -> None:
    x, y = clusters(100)
    theirs = add_dataset(settings, tmp_path, x, y)  # the default tenant's
    with pytest.raises(DatasetMismatch) as info:
        prepare(spec(f"file:{theirs}"), seed=0, settings=settings, tenant="acme")
    assert info.value.param == "dataset.name" and f"no file {theirs!r}" in str(info.value)
    with pytest.raises(DatasetMismatch) as info:
        prepare(spec("digits", f"file:{theirs}"), seed=0, settings=settings, tenant="acme")
    assert info.value.param == "dataset.transfer.name"
    assert prepare(spec(f"file:{theirs}"), seed=0, settings=settings).num_classes == 3
