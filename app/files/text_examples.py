"""Texts as classification examples (numpy only: the upload check, the worker and the exported
graph's users share it).

An example is its text's UTF-8 bytes, cut to the dataset's `max_length` and padded after the
text with byte 0 (the padding; a text holding a NUL byte is refused). A model reads the bytes
as they are, so an exported text classifier takes raw UTF-8 bytes padded the same way.
"""

from collections.abc import Iterable

import numpy as np

PAD = 0
DEFAULT_MAX_LENGTH = 256
MAX_MAX_LENGTH = 4096


class BadText(ValueError):
    """A text that cannot be an example (it holds the padding byte)."""


def encode(texts: Iterable[str], max_length: int) -> tuple[np.ndarray, int]:
    """(uint8 [n, max_length] rows, how many texts were cut to fit)."""
    rows, cut = [], 0
    for text in texts:
        row, was_cut = encode_one(text, max_length)
        rows.append(row)
        cut += was_cut
    if not rows:
        return np.zeros((0, max_length), dtype=np.uint8), 0
    return np.stack(rows), cut


def encode_one(text: str, max_length: int) -> tuple[np.ndarray, bool]:
    """One text's row and whether it was cut."""
    data = text.encode("utf-8")
    if b"\0" in data:
        raise BadText("holds a NUL byte (byte 0 is the padding)")
    row = np.zeros(max_length, dtype=np.uint8)
    kept = data[:max_length]
    row[: len(kept)] = np.frombuffer(kept, dtype=np.uint8)
    return row, len(data) > max_length


def decode(row: np.ndarray) -> str:
    """The text of a row: its bytes before the padding (a character the cut split is dropped)."""
    data = np.asarray(row).astype(np.uint8).tobytes()
    return data.split(b"\0", 1)[0].decode("utf-8", errors="ignore")
