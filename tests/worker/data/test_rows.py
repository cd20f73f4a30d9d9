"""Rows read from .npy files on disk are exactly numpy's rows."""

from pathlib import Path

import numpy as np
import pytest

from worker.data.rows import ArrayRows, Concat, NpyRows, Subset, iter_chunks, row_digests


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int64])
def test_npy_rows_read_any_rows_in_any_order(tmp_path: Path, dtype: type) -> None:
    array = (np.arange(50 * 3 * 4 * 4) % 251).astype(dtype).reshape(50, 3, 4, 4)
    np.save(tmp_path / "a.npy", array)
    rows = NpyRows(tmp_path / "a.npy")
    assert rows.shape == array.shape and rows.dtype == array.dtype and len(rows) == 50
    pick = np.array([7, 3, 3, 49, 0, 8, 9, 10, 4])
    assert np.array_equal(rows.take(pick), array[pick])
    assert np.array_equal(rows.take(np.arange(50)), array)
    assert rows.take(np.array([], dtype=np.int64)).shape == (0, 3, 4, 4)
    with pytest.raises(IndexError):
        rows.take(np.array([50]))
    chunks = list(iter_chunks(rows, 16))
    assert [len(c) for c in chunks] == [16, 16, 16, 2]
    assert np.array_equal(np.concatenate(chunks), array)


def test_npy_rows_refuse_fortran_order_and_truncated_files(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((4, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="C-order"):
        NpyRows(tmp_path / "f.npy")
    np.save(tmp_path / "t.npy", np.ones((100, 3), dtype=np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="shorter"):
        NpyRows(tmp_path / "t.npy")


def test_subsets_and_concatenations_map_rows(tmp_path: Path) -> None:
    a = np.arange(20, dtype=np.float32).reshape(10, 2)
    np.save(tmp_path / "a.npy", a)
    b = -np.arange(6, dtype=np.float32).reshape(3, 2)
    both = Concat([Subset(NpyRows(tmp_path / "a.npy"), np.array([9, 1, 5])), ArrayRows(b)])
    expected = np.concatenate([a[[9, 1, 5]], b])
    assert len(both) == 6
    assert np.array_equal(both.take(np.array([5, 0, 3, 1])), expected[[5, 0, 3, 1]])
    digests = list(row_digests(both))
    assert len(set(digests)) == 6 and all(len(d) == 16 for d in digests)
