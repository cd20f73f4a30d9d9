"""A text dataset for `language_model` jobs: a .txt file (one document) or a .jsonl file (one
JSON object per line, its `text` a document). Documents are joined with a newline between them
and the bytes cut into windows by the split rule of app/files/text_windows.py, with the upload
option `context` (bytes per window, default 128): the prepared arrays are x / x_test (uint8
windows) and y / y_test (the next byte at each position, uint8)."""

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.files.formats import CheckContext, CheckError, Format, OptionError, register
from app.files.text_windows import DEFAULT_CONTEXT, SPLIT_RULE, VOCAB, TooShort, windows

MAX_CONTEXT = 8192


def parse_options(raw: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"context": DEFAULT_CONTEXT}
    for name, value in raw.items():
        if name != "context":
            raise OptionError(name, f"{name} does not apply to text files")
        try:
            context = int(value)
        except ValueError:
            context = 0
        if not 2 <= context <= MAX_CONTEXT:
            raise OptionError(name, f"context must be a whole number of bytes, 2 to {MAX_CONTEXT}")
        options["context"] = context
    return options


def _txt_documents(ctx: CheckContext) -> Iterator[bytes]:
    """A .txt file is one document."""
    data = ctx.path.read_bytes()
    _utf8(data, "the file")
    if data:
        yield data


def _jsonl_documents(ctx: CheckContext) -> Iterator[bytes]:
    """Each line's `text`, as UTF-8 bytes; a line that is not an object with a string `text` is
    refused, naming the line."""
    with ctx.path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            _utf8(line, f"line {number}")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CheckError(f"line {number} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CheckError(f'line {number} is not an object with a string "text"')
            yield record["text"].encode("utf-8")


def _utf8(data: bytes, where: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckError(f"{where} is not UTF-8 text (byte {exc.start})") from None


def check_txt(ctx: CheckContext) -> dict[str, Any]:
    return _check(ctx, "text", list(_txt_documents(ctx)))


def check_jsonl(ctx: CheckContext) -> dict[str, Any]:
    return _check(ctx, "jsonl", list(_jsonl_documents(ctx)))


def _check(ctx: CheckContext, fmt: str, documents: list[bytes]) -> dict[str, Any]:
    context = ctx.options.get("context", DEFAULT_CONTEXT)
    if not documents:
        raise CheckError("the file holds no text")
    stream = b"\n".join(documents)
    try:
        x, y, x_test, y_test = windows(stream, context)
    except TooShort as exc:
        raise CheckError(str(exc)) from None
    arrays: dict[str, str] = {}
    for name, array in (("x", x), ("y", y), ("x_test", x_test), ("y_test", y_test)):
        # Targets are bytes too: uint8 on disk, read back as class indices.
        values = np.ascontiguousarray(array, dtype=np.uint8)
        np.save(ctx.output(f"{name}.npy", values.nbytes + 128), values, allow_pickle=False)
        arrays[name] = ctx.key(f"{name}.npy")
    return {
        "format": fmt,
        "task": "language_model",
        "rows": len(x),
        "test_rows": len(x_test),
        "input_shape": [context],
        "dtype": "uint8",
        "labelled": True,
        "num_classes": VOCAB,
        "class_names": None,
        "bytes": len(stream),
        "documents": len(documents),
        "context": context,
        "test_split": f"{SPLIT_RULE} (context {context})",
        "arrays": arrays,
    }


register(Format("text", "dataset", (".txt",), check_txt, parse_options))
register(Format("jsonl", "dataset", (".jsonl",), check_jsonl, parse_options))
