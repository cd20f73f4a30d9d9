"""Text datasets: a .txt file (one document) or a .jsonl file (one JSON object per line).

For `language_model` jobs (a .txt file; a .jsonl file whose lines have no `label`, or with the
upload option `task=language_model`): each line's `text` is a document; documents are joined
with a newline between them and the bytes cut into windows by the split rule of
app/files/text_windows.py, with the upload option `context` (bytes per window, default 128):
the prepared arrays are x / x_test (uint8 windows) and y / y_test (the next byte at each
position, uint8). A job whose teacher brings its own tokenizer (a causal LM: `hf`, `gguf`)
reads the documents again from the upload and cuts them into that tokenizer's tokens, with the
end-of-text token between documents and `context` tokens per window (worker/data/uploaded.py).

For `classification` jobs (a .jsonl file whose lines have a `label`, or with
`task=classification` or `max_length`): each line's `text` is an example and its `label` the
class (app/files/labelled_text.py); without labels the file is a transfer set of text.
"""

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.files import labelled_text
from app.files.formats import CheckContext, CheckError, Format, OptionError, register
from app.files.text_windows import DEFAULT_CONTEXT, SPLIT_RULE, VOCAB, TooShort, windows

MAX_CONTEXT = 8192


TASKS = ("language_model", "classification")


def _context(name: str, value: str) -> int:
    try:
        context = int(value)
    except ValueError:
        context = 0
    if not 2 <= context <= MAX_CONTEXT:
        raise OptionError(name, f"context must be a whole number of bytes, 2 to {MAX_CONTEXT}")
    return context


def parse_options(raw: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"context": DEFAULT_CONTEXT}
    for name, value in raw.items():
        if name != "context":
            raise OptionError(name, f"{name} does not apply to .txt files")
        options["context"] = _context(name, value)
    return options


def parse_jsonl_options(raw: dict[str, str]) -> dict[str, Any]:
    """`task` (default: classification when the first line has a `label`), `context` for
    language_model, `max_length` for classification."""
    options: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "context":
            options["context"] = _context(name, value)
        elif name == "max_length":
            options["max_length"] = labelled_text.max_length_option(name, value)
        elif name == "task":
            if value not in TASKS:
                raise OptionError(name, f"task must be one of {', '.join(TASKS)}")
            options["task"] = value
        else:
            raise OptionError(name, f"{name} does not apply to .jsonl files")
    implied = "classification" if "max_length" in options else None
    if "context" in options:
        if implied:
            raise OptionError(
                "context",
                "context (language_model) and max_length (classification) do not go together",
            )
        implied = "language_model"
    if implied and options.setdefault("task", implied) != implied:
        wrong = "max_length" if implied == "classification" else "context"
        raise OptionError(wrong, f"{wrong} does not apply to task {options['task']}")
    return options


def _txt_documents(ctx: CheckContext) -> Iterator[bytes]:
    """A .txt file is one document."""
    data = ctx.path.read_bytes()
    _utf8(data, "the file")
    if data:
        yield data


def _jsonl_records(ctx: CheckContext) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; a line that is not an object with a
    string `text` is refused, naming the line."""
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
            yield number, record


def _jsonl_documents(ctx: CheckContext) -> Iterator[bytes]:
    """Each line's `text`, as UTF-8 bytes."""
    for _, record in _jsonl_records(ctx):
        yield record["text"].encode("utf-8")


def _jsonl_examples(ctx: CheckContext) -> Iterator[labelled_text.Record]:
    """(line, text, label as a string or None) of each line; a label is a string or a whole
    number."""
    for number, record in _jsonl_records(ctx):
        label = record.get("label")
        if label is not None:
            if isinstance(label, bool) or not isinstance(label, (str, int)):
                raise CheckError(f'line {number}: "label" must be a string or a whole number')
            label = str(label).strip()
        yield number, record["text"], label


def _utf8(data: bytes, where: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckError(f"{where} is not UTF-8 text (byte {exc.start})") from None


def check_txt(ctx: CheckContext) -> dict[str, Any]:
    return _check(ctx, "text", list(_txt_documents(ctx)))


def check_jsonl(ctx: CheckContext) -> dict[str, Any]:
    task = ctx.options.get("task")
    if task is None:
        first = next(_jsonl_records(ctx), None)
        task = "classification" if first is not None and "label" in first[1] else "language_model"
    if task == "classification":
        return labelled_text.prepare(ctx, lambda: _jsonl_examples(ctx), "jsonl", 'field "label"')
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
register(Format("jsonl", "dataset", (".jsonl",), check_jsonl, parse_jsonl_options))
