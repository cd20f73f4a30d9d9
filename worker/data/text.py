"""Text as language-model examples: the builtin corpus, cut into windows by the split rule of
app/files/text_windows.py (which uploaded text files follow too): windows of bytes, or, when
the job's teacher brings its own tokenizer (worker/data/tokens.py), of its tokens."""

import hashlib
import sys
import sysconfig
from pathlib import Path

import numpy as np

from app.files.text_windows import SPLIT_RULE, VOCAB, TooShort
from app.files.text_windows import windows as split_windows
from distillery.types.catalog.datasets import TextCorpusOptions
from worker.data.registry import DATASETS, DatasetMismatch, DatasetRequest, RawDataset
from worker.data.tokens import Vocabulary

# Folders of the standard library that are not its own source: tests, installed packages.
SKIPPED_FOLDERS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def windows(
    stream: bytes | np.ndarray, context: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, x_test, y_test) by the split rule; too little text names the dataset."""
    try:
        return split_windows(stream, context)
    except TooShort as exc:
        raise DatasetMismatch("dataset", str(exc)) from None


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


def token_dataset(
    documents: list[str], context: int, what: str, vocabulary: Vocabulary
) -> RawDataset:
    """The documents cut into `vocabulary`'s tokens, packed with the end-of-text token after
    each, and into windows of `context` tokens by the split rule."""
    tokens = vocabulary.encode(documents)
    x, y, x_test, y_test = windows(tokens, context)
    return RawDataset(
        x,
        y,
        x_test,
        y_test,
        vocabulary.size,
        [],  # a vocabulary's tokens are no class names worth listing
        f"{what}, as {vocabulary.name}'s tokens: {SPLIT_RULE} (tokens for bytes)",
        raw_dtype=str(x.dtype),
        vocabulary=vocabulary,
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


def stdlib_documents(max_bytes: int) -> list[str]:
    """The same text as stdlib_text (its first `max_bytes` bytes), one document per file."""
    documents, left = [], max_bytes
    for path in stdlib_files():
        if left <= 0:
            break
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            data += b"\n"
        documents.append(data[:left].decode("utf-8", errors="replace"))
        left -= len(data)
    return documents


@DATASETS.register("pystdlib")
def load_pystdlib(request: DatasetRequest) -> RawDataset:
    """The Python standard library's source as a byte corpus: real text (code, comments and
    docstrings in English) that every Python install ships, with the long-range structure
    (indentation, brackets, names reused through a function) that a bigger model learns and a
    small one cannot. It is this interpreter's library, so the bytes depend on the Python
    version (the test split's description names it, with the corpus's sha256). A teacher with
    its own tokenizer gets the same text as its tokens, one document per file."""
    options = TextCorpusOptions.model_validate(request.options)
    version = ".".join(str(v) for v in sys.version_info[:3])
    if request.vocabulary is not None:
        documents = stdlib_documents(options.max_bytes)
        size = sum(len(d.encode("utf-8")) for d in documents)
        what = f"the Python {version} standard library's .py files ({size} bytes)"
        return token_dataset(documents, options.context, what, request.vocabulary)
    text = stdlib_text(options.max_bytes)
    digest = hashlib.sha256(text).hexdigest()[:16]
    what = f"the Python {version} standard library's .py files ({len(text)} bytes, sha256 {digest})"
    return text_dataset(text, options.context, what)
