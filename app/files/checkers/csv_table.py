"""A dataset .csv: a header row, an optional label column, and either numeric feature columns
or a text column (`text_column`, default "text": when the header has it, the file is text for
classification, app/files/labelled_text.py, and its other columns are ignored)."""

import csv
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.files import labelled_text, splits
from app.files.formats import CheckContext, CheckError, Format, OptionError, register
from app.files.labels import Labels

MAX_LABEL_COLUMN_CHARS = 200


def parse_options(raw: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"label_column": "label"}
    for name, value in raw.items():
        if name == "max_length":
            options[name] = labelled_text.max_length_option(name, value)
            continue
        if name not in ("label_column", "text_column"):
            raise OptionError(name, f"{name} does not apply to .csv files")
        if not value.strip() or len(value) > MAX_LABEL_COLUMN_CHARS:
            raise OptionError(
                name, f"{name} must be a column name of 1 to {MAX_LABEL_COLUMN_CHARS} chars"
            )
        options[name] = value.strip()
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


def _fields_checked(ctx: CheckContext, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Every data row, refused when its field count differs from the header's."""
    for number, fields in _rows(ctx):
        if len(fields) != len(header):
            raise CheckError(
                f"row {number} has {len(fields)} fields but the header has {len(header)}"
            )
        yield number, fields


def _check_text(
    ctx: CheckContext, header: list[str], text_index: int, label_index: int
) -> dict[str, Any]:
    def records() -> Iterator[labelled_text.Record]:
        for number, fields in _fields_checked(ctx, header):
            label = fields[label_index].strip() if label_index >= 0 else None
            yield number, fields[text_index], label

    label_column = header[label_index] if label_index >= 0 else None
    info = labelled_text.prepare(ctx, records, "csv", f"column {label_column!r}")
    used = {header[text_index], label_column}
    return {
        **info,
        "text_column": header[text_index],
        "label_column": label_column,
        "ignored_columns": [h for h in header if h not in used],
    }


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
    text_column = ctx.options.get("text_column", "text")
    if text_column in header and text_column != label_column:
        return _check_text(ctx, header, header.index(text_column), label_index)
    if "text_column" in ctx.options:
        raise CheckError(f"the header has no column {text_column!r} (the text_column option)")
    if "max_length" in ctx.options:
        raise CheckError(f"max_length applies to text; the header has no column {text_column!r}")
    features = [i for i in range(len(header)) if i != label_index]
    if not features:
        raise CheckError(f"no feature columns besides the label column {label_column!r}")

    # Pass 1: validate every value, count rows, collect the labels.
    rows = 0
    labels = Labels(f"column {label_column!r}")
    for number, fields in _fields_checked(ctx, header):
        for i in features:
            _number(fields[i], header[i], number)
        if labelled:
            labels.add(fields[label_index].strip(), number)
        rows += 1
    if rows == 0:
        raise CheckError("the file has a header but no data rows")

    class_names: list[str] | None = None
    index: dict[str, int] = {}
    num_classes: int | None = None
    if labelled:
        num_classes, class_names, index = labels.index()
        if rows < 2:
            raise CheckError("the file has 1 row; at least 2 are needed to split off a test set")

    # Pass 2: fill the prepared arrays.
    x = ctx.array("x", np.float32, (rows, len(features)))
    y = ctx.array("y", np.int64, (rows,)) if labelled else None
    for number, fields in _rows(ctx):
        x[number - 1] = [float(fields[i]) for i in features]
        if y is not None:
            y[number - 1] = index[fields[label_index].strip()]
    arrays = ctx.saved(x=x, y=y)
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
