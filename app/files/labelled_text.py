"""Texts with (or without) class labels as a classification dataset: the shared half of the
.jsonl (`text`, `label`) and .csv text-column checks.

Each text becomes a row of `max_length` bytes (app/files/text_examples.py): x is uint8
[rows, max_length], y int64 class indices (app/files/labels.py). Without labels the file is a
transfer set of text. Two passes over the records (labels first, then the rows), so a large
file is never held whole in memory.
"""

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from app.files import splits
from app.files.formats import CheckContext, CheckError, OptionError
from app.files.labels import Labels
from app.files.text_examples import DEFAULT_MAX_LENGTH, MAX_MAX_LENGTH, BadText, encode_one

# (1-based row or line number, text, label or None)
Record = tuple[int, str, str | None]


def max_length_option(name: str, value: str) -> int:
    try:
        length = int(value)
    except ValueError:
        length = 0
    if not 1 <= length <= MAX_MAX_LENGTH:
        raise OptionError(
            name, f"max_length must be a whole number of bytes, 1 to {MAX_MAX_LENGTH}"
        )
    return length


def prepare(
    ctx: CheckContext,
    records: Callable[[], Iterator[Record]],
    fmt: str,
    label_where: str,
) -> dict[str, Any]:
    """Check the records and write x (and y when labelled); the file's info."""
    max_length = ctx.options.get("max_length", DEFAULT_MAX_LENGTH)
    labels = Labels(label_where)
    rows = labelled_rows = cut = 0
    for number, text, label in records():
        if label is not None:
            labels.add(label, number)
            labelled_rows += 1
        try:
            _, was_cut = encode_one(text, max_length)
        except BadText as exc:
            raise CheckError(f"row {number}'s text {exc}") from None
        cut += was_cut
        rows += 1
    if rows == 0:
        raise CheckError("the file holds no texts")
    labelled = labelled_rows > 0
    if labelled and labelled_rows != rows:
        raise CheckError(
            f"{rows - labelled_rows} of {rows} rows have no label; label every row, "
            "or none for a transfer set"
        )
    num_classes: int | None = None
    class_names: list[str] | None = None
    index: dict[str, int] = {}
    if labelled:
        num_classes, class_names, index = labels.index()
        if rows < 2:
            raise CheckError("the file has 1 row; at least 2 are needed to split off a test set")

    x = ctx.array("x", np.uint8, (rows, max_length))
    y = ctx.array("y", np.int64, (rows,)) if labelled else None
    for row, (_, text, label) in enumerate(records()):
        x[row] = encode_one(text, max_length)[0]
        if y is not None and label is not None:
            y[row] = index[label]
    arrays = ctx.saved(x=x, y=y)
    return {
        "format": fmt,
        "task": "classification",
        "modality": "text",
        "rows": rows,
        "test_rows": 0,
        "input_shape": [max_length],
        "dtype": "uint8",
        "labelled": labelled,
        "num_classes": num_classes,
        "class_names": class_names,
        "max_length": max_length,
        "truncated": cut,
        "encoding": "UTF-8 bytes, cut to max_length, padded after the text with byte 0",
        "test_split": splits.describe(0, labelled),
        "arrays": arrays,
    }
