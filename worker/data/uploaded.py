"""`file:<id>`: an uploaded dataset, read from the arrays its check prepared (.npy on disk).

The inputs stay on disk (`NpyRows`); `prepare` decides whether they fit in memory. The test
split is the file's own x_test / y_test, else the fixed split of app.files.splits; a transfer
set has none: all of its rows (x, then x_test) are transfer examples. A language-model
corpus for a teacher with its own tokenizer is read from the upload itself and cut into its
tokens (the prepared arrays are bytes).
"""

import json
from pathlib import Path

import numpy as np

from app.files.splits import DESCRIPTION, fixed_test_split
from distillery.types.catalog import FILE_PREFIX, SpecError
from worker.data.registry import DATASETS, DatasetMismatch, DatasetRequest, RawDataset
from worker.data.rows import NpyRows, Rows, Subset
from worker.data.text import token_dataset
from worker.uploads import uploaded_file


@DATASETS.register("file")
def load_file(request: DatasetRequest) -> RawDataset:
    file_id = request.name.removeprefix(FILE_PREFIX)
    try:
        upload = uploaded_file(
            request.settings, file_id, "dataset", request.param, tenant=request.tenant
        )
    except SpecError as exc:
        raise DatasetMismatch(exc.param, exc.message) from None
    info = upload.info
    if request.vocabulary is not None and info.get("task") == "language_model":
        return token_dataset(
            upload_documents(upload.local_path(), upload.format),
            int(info["context"]),
            f"file {upload.id} ({upload.format}, {info.get('bytes')} bytes)",
            request.vocabulary,
        )

    def rows(name: str) -> NpyRows | None:
        path = upload.array_path(name)
        if path is None:
            return None
        return NpyRows(path, identity=f"{upload.id}:{upload.sha256}:{name}")

    def labels(name: str) -> np.ndarray | None:
        path = upload.array_path(name)
        if path is None:
            return None
        return np.load(path, allow_pickle=False).astype(np.int64, copy=False)

    x, x_test = rows("x"), rows("x_test")
    if x is None:
        raise DatasetMismatch(request.param, f"file {file_id} has no prepared inputs")
    y, y_test = labels("y"), labels("y_test")
    num_classes = info.get("num_classes")
    class_names = info.get("class_names") or (
        [str(c) for c in range(num_classes)] if num_classes else None
    )
    train_x: Rows
    test_x: Rows
    if request.transfer:
        # Every row is a transfer example (prepare reads x then x_test): no split to make.
        x_rows, test_rows = np.arange(len(x)), None
        train_x, train_y, test_y = x, y, y_test
        test_x = x_test if x_test is not None else Subset(x, np.zeros(0, dtype=np.int64))
        test_split = "none (a transfer set)"
    elif x_test is not None:
        x_rows, test_rows = np.arange(len(x)), None
        train_x, test_x, train_y, test_y = x, x_test, y, y_test
        test_split = info.get("test_split") or "the file's own x_test / y_test"
    else:
        if len(x) < 2:
            raise DatasetMismatch(request.param, f"file {file_id} has fewer than 2 rows")
        x_rows, test_rows = fixed_test_split(len(x))
        train_x, test_x = Subset(x, x_rows), Subset(x, test_rows)
        train_y = None if y is None else y[x_rows]
        test_y = None if y is None else y[test_rows]
        test_split = info.get("test_split") or DESCRIPTION
    return RawDataset(
        x=train_x,
        y=train_y,
        x_test=test_x,
        y_test=test_y,
        num_classes=num_classes,
        class_names=class_names,
        test_split=test_split,
        all_x=x,
        x_rows=x_rows,
        test_rows=test_rows,
        file={"id": upload.id, "sha256": upload.sha256},
        raw_dtype=str(x.dtype),
        modality=info.get("modality", "values"),
    )


def upload_documents(path: Path, fmt: str) -> list[str]:
    """A language-model upload's documents as its check read them (app/files/checkers/
    text_corpus.py, which refused anything else): a .txt file is one, a .jsonl file's lines'
    `text` are the others."""
    if fmt == "text":
        return [path.read_text(encoding="utf-8")]
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]
