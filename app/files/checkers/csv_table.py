"""A dataset .csv: a header row, numeric feature columns and an optional label column."""

import csv
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.files import splits
from app.files.formats import MAX_CLASSES, CheckContext, CheckError, Format, OptionError, register

MAX_LABEL_COLUMN_CHARS = 200


def parse_options(raw: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"label_column": "label"}
    for name, value in raw.items():
        if name != "label_column":
            raise OptionError(name, f"{name} does not apply to .csv files")
        if not value.strip() or len(value) > MAX_LABEL_COLUMN_CHARS:
            raise OptionError(
                name, f"label_column must be a column name of 1 to {MAX_LABEL_COLUMN_CHARS} chars"
            )
        options["label_column"] = value.strip()
    return options


def _rows(ctx: CheckContext) -> Iterator[tuple[int, list[str]]]:
    """(1-based data row, fields) of every non-blank row after the header."""
    with ctx.path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader, None)
        number = 0
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            number += 1
            yield number, fields


def _header_fields(ctx: CheckContext) -> int:
    """Fields in the first line, counted in chunks (a huge header fails before it is split)."""
    limit = ctx.settings.max_csv_columns
    count = 1
    with ctx.path.open(encoding="utf-8-sig", newline="") as f:
        while chunk := f.read(64 * 1024):
            line, newline, _ = chunk.partition("\n")
            count += line.count(",")
            if count > limit:
                raise CheckError(f"the header has more than {limit} columns, the limit")
            if newline:
                break
    return count


def _header(ctx: CheckContext) -> list[str]:
    limit = ctx.settings.max_csv_columns
    _header_fields(ctx)
    with ctx.path.open(newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise CheckError("the file is empty: a header row naming the columns is required")
    header = [h.strip() for h in header]
    if len(header) > limit:
        raise CheckError(f"the header has {len(header)} columns, over the limit of {limit}")
    for index, name in enumerate(header):
        if not name:
            raise CheckError(f"header column {index + 1} has no name")
        try:
            float(name)
        except ValueError:
            pass
        else:
            raise CheckError(
                f"the first row looks like data ({name!r} in column {index + 1}); "
                "a header row naming the columns is required"
            )
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise CheckError(f"the header names column {duplicates[0]!r} twice")
    return header


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number(value: str, column: str, row: int) -> float:
    try:
        number = float(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise CheckError(f"column {column!r} row {row}: {shown!r} is not a number") from None
    if not math.isfinite(number):
        raise CheckError(f"column {column!r} row {row} holds {value.strip()!r} (NaN or infinity)")
    if abs(number) > FLOAT32_MAX:
        raise CheckError(
            f"column {column!r} row {row} holds {value.strip()!r}, beyond float32's range"
        )
    return number


def check(ctx: CheckContext) -> dict[str, Any]:
    try:
        return _check(ctx)
    except UnicodeDecodeError as exc:
        raise CheckError(f"the file is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise CheckError(f"the file is not valid CSV: {exc}") from None


def _check(ctx: CheckContext) -> dict[str, Any]:
    header = _header(ctx)
    label_column = ctx.options.get("label_column", "label")
    labelled = label_column in header
    label_index = header.index(label_column) if labelled else -1
    features = [i for i in range(len(header)) if i != label_index]
    if not features:
        raise CheckError(f"no feature columns besides the label column {label_column!r}")

    # Pass 1: validate every value, count rows, collect the labels.
    rows = 0
    labels: set[str] = set()
    integer_labels = True
    for number, fields in _rows(ctx):
        if len(fields) != len(header):
            raise CheckError(
                f"row {number} has {len(fields)} fields but the header has {len(header)}"
            )
        for i in features:
            _number(fields[i], header[i], number)
        if labelled:
            label = fields[label_index].strip()
            if not label:
                raise CheckError(f"column {label_column!r} row {number} is empty")
            if label not in labels:
                labels.add(label)
                if len(labels) > MAX_CLASSES:
                    raise CheckError(f"column {label_column!r} holds over {MAX_CLASSES} classes")
                if integer_labels:
                    try:
                        value = int(label)
                    except ValueError:
                        integer_labels = False
                    else:
                        if value < 0 or value >= MAX_CLASSES:
                            raise CheckError(
                                f"column {label_column!r} row {number} holds class {value}; "
                                f"integer labels must be 0..{MAX_CLASSES - 1}"
                            )
        rows += 1
    if rows == 0:
        raise CheckError("the file has a header but no data rows")

    class_names: list[str] | None = None
    index: dict[str, int] = {}
    num_classes: int | None = None
    if labelled:
        if integer_labels:
            num_classes = max(int(v) for v in labels) + 1
            index = {v: int(v) for v in labels}
        else:
            class_names = sorted(labels)
            num_classes = len(class_names)
            index = {v: i for i, v in enumerate(class_names)}
        if num_classes < 2:
            raise CheckError(
                f"column {label_column!r} holds {num_classes} class; a classifier needs at least 2"
            )
        if rows < 2:
            raise CheckError("the file has 1 row; at least 2 are needed to split off a test set")

    # Pass 2: fill the prepared arrays.
    x = np.lib.format.open_memmap(
        ctx.output("x.npy", rows * len(features) * 4),
        mode="w+",
        dtype=np.float32,
        shape=(rows, len(features)),
    )
    y = (
        np.lib.format.open_memmap(ctx.output("y.npy", rows * 8), "w+", np.int64, (rows,))
        if labelled
        else None
    )
    for number, fields in _rows(ctx):
        x[number - 1] = [float(fields[i]) for i in features]
        if y is not None:
            y[number - 1] = index[fields[label_index].strip()]
    x.flush()
    del x
    arrays = {"x": ctx.key("x.npy")}
    if y is not None:
        y.flush()
        del y
        arrays["y"] = ctx.key("y.npy")
    return {
        "format": "csv",
        "rows": rows,
        "test_rows": 0,
        "input_shape": [len(features)],
        "dtype": "float32",
        "labelled": labelled,
        "num_classes": num_classes,
        "class_names": class_names,
        "label_column": label_column if labelled else None,
        "test_split": splits.describe(0, labelled),
        "arrays": arrays,
    }


register(Format("csv", "dataset", (".csv",), check, parse_options))
