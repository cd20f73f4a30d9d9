"""Text as language-model examples: the byte stream cut into windows, and the builtin corpus.

The split rule, for every text dataset (DESIGN section 4): the corpus's bytes, documents joined
in their order, are cut into windows of `context + 1` bytes that start every `context` bytes
(each window's input is its first `context` bytes, its targets the last `context`: the next
byte at each position). Windows are taken in runs of 16; every tenth run (runs 9, 19, 29, ...)
is the test split, the rest train (the job's `val_fraction` then takes validation windows from
those at random). Runs rather than single windows keep a test window's neighbours, which share
its text, mostly out of training.
"""

import hashlib
import sys
import sysconfig
from pathlib import Path

import numpy as np

from app.catalog import TextCorpusOptions
from worker.data.registry import DATASETS, DatasetMismatch, DatasetRequest, RawDataset

VOCAB = 256
RUN = 16  # windows per run
TEST_EVERY = 10  # every tenth run is test

SPLIT_RULE = (
    "windows of context + 1 bytes every context bytes, in runs of 16 windows; "
    "every tenth run (9, 19, ...) is test"
)

# Folders of the standard library that are not its own source: tests, installed packages.
SKIPPED_FOLDERS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def windows(stream: bytes, context: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, x_test, y_test) by the split rule: x uint8 [n, context], y int64 [n, context]."""
    data = np.frombuffer(stream, dtype=np.uint8)
    count = (len(data) - 1) // context
    if count < 2 * RUN:
        raise DatasetMismatch(
            "dataset",
            f"{len(data)} bytes make {max(count, 0)} windows of {context} bytes; "
            f"at least {2 * RUN} are needed (a train and a test run)",
        )
    starts = np.arange(count) * context
    all_windows = data[starts[:, None] + np.arange(context + 1)]
    test = (np.arange(count) // RUN) % TEST_EVERY == TEST_EVERY - 1
    if not test.any():  # a short corpus: its last run is the test split
        test[-RUN:] = True
    x, y = all_windows[:, :-1], all_windows[:, 1:].astype(np.int64)
    return x[~test], y[~test], x[test], y[test]


def text_dataset(stream: bytes, context: int, what: str) -> RawDataset:
    x, y, x_test, y_test = windows(stream, context)
    return RawDataset(
        x,
        y,
        x_test,
        y_test,
        VOCAB,
        None,
        f"{what}: {SPLIT_RULE}",
        raw_dtype="uint8",
    )


def stdlib_files() -> list[Path]:
    """The standard library's .py files, in a fixed shuffled order (a corpus cut short still
    samples every corner of the library rather than its first modules alphabetically)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not SKIPPED_FOLDERS.intersection(p.relative_to(root).parts[:-1])
    )
    order = np.random.default_rng(0).permutation(len(files))
    return [files[i] for i in order]


def stdlib_text(max_bytes: int) -> bytes:
    out = bytearray()
    for path in stdlib_files():
        out += path.read_bytes()
        if not out.endswith(b"\n"):
            out += b"\n"
        if len(out) >= max_bytes:
            break
    return bytes(out[:max_bytes])


@DATASETS.register("pystdlib")
def load_pystdlib(request: DatasetRequest) -> RawDataset:
    """The Python standard library's source as a byte corpus: real text (code, comments and
    docstrings in English) that every Python install ships, with the long-range structure
    (indentation, brackets, names reused through a function) that a bigger model learns and a
    small one cannot. It is this interpreter's library, so the bytes depend on the Python
    version (the test split's description names it, with the corpus's sha256)."""
    options = TextCorpusOptions.model_validate(request.options)
    text = stdlib_text(options.max_bytes)
    version = ".".join(str(v) for v in sys.version_info[:3])
    digest = hashlib.sha256(text).hexdigest()[:16]
    what = f"the Python {version} standard library's .py files ({len(text)} bytes, sha256 {digest})"
    return text_dataset(text, options.context, what)
