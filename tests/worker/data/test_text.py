"""Text as language-model windows: the documented split rule, and the builtin corpus."""

import sys

import numpy as np
import pytest

from app.files.text_windows import RUN, TEST_EVERY
from worker.data import DatasetMismatch, load_dataset
from worker.data.text import stdlib_files, windows


def test_windows_hold_each_position_and_its_next_byte() -> None:
    stream = bytes(np.random.default_rng(0).integers(0, 256, 20_001, dtype=np.uint8))
    x, y, x_test, y_test = windows(stream, 10)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert len(x) + len(x_test) == 2000
    # Targets are the inputs shifted by one byte.
    assert np.array_equal(y[:, :-1], x[:, 1:]) and np.array_equal(y_test[:, :-1], x_test[:, 1:])
    # Every tenth run of 16 windows is test: runs 9, 19, ... (windows 144..159, 304..319, ...).
    data = np.frombuffer(stream, dtype=np.uint8)
    assert np.array_equal(x_test[0], data[144 * 10 : 145 * 10])
    assert np.array_equal(x_test[RUN], data[(144 + RUN * TEST_EVERY) * 10 :][:10])
    assert len(x_test) == 2000 // (RUN * TEST_EVERY) * RUN + max(0, 2000 % 160 - 144)
    # Train windows, in order, are every other window.
    assert np.array_equal(x[0], data[:10]) and np.array_equal(x[144], data[160 * 10 : 161 * 10])


def test_a_short_text_tests_on_its_last_run() -> None:
    x, _, x_test, _ = windows(b"a" * 401, 10)
    assert len(x_test) == RUN and len(x) == 40 - RUN


def test_too_little_text_is_refused() -> None:
    with pytest.raises(DatasetMismatch, match="windows"):
        windows(b"abc" * 10, 8)


def test_the_stdlib_corpus_is_the_libraries_own_source() -> None:
    files = stdlib_files()
    assert files and all(f.suffix == ".py" for f in files)
    assert not any({"test", "tests", "site-packages"} & set(f.parts) for f in files)
    raw = load_dataset("pystdlib", {"context": 64, "max_bytes": 100_000})
    again = load_dataset("pystdlib", {"context": 64, "max_bytes": 100_000})
    assert np.array_equal(raw.x, again.x) and np.array_equal(raw.x_test, again.x_test)
    assert raw.num_classes == 256 and raw.x.shape[1] == 64
    assert (len(raw.x) + len(raw.x_test)) == (100_000 - 1) // 64
    version = ".".join(str(v) for v in sys.version_info[:3])
    assert f"Python {version}" in raw.test_split and "sha256" in raw.test_split
    assert b"\ndef " in bytes(np.asarray(raw.x).ravel())  # Python source, as bytes
