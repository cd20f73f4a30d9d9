"""`logits`: precomputed teacher logits (offline distillation: no teacher runs).

The file has one row per row of the dataset's x, then one per row of the transfer set (its x,
then its x_test), in file order; optional `logits_test` has one row per row of the dataset's
own x_test. The student's distill examples (train-split rows of x, then the transfer rows kept)
read exactly their rows.
"""

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from distillery.types.catalog import SpecError
from worker.data.rows import NpyRows
from worker.teachers.registry import ALL_ROWS, TEACHER_SOURCES, TeacherSource
from worker.uploads import UploadedFile

PARAM = "teacher.file_id"
BATCH = 4096


@TEACHER_SOURCES.register("logits")
class LogitsTeacher(TeacherSource):
    name = "logits"
    preprocessing = "precomputed-v1"
    upload: UploadedFile

    def validate(self) -> None:
        self.upload = self.uploaded("logits")
        data = self.data
        path = self.upload.array_path("logits")
        if path is None:
            raise SpecError(PARAM, f"file {self.upload.id} has no prepared logits")
        self.logits = NpyRows(path)
        test_path = self.upload.array_path("logits_test")
        self.logits_test = NpyRows(test_path) if test_path is not None else None
        shape = self.logits.shape
        if len(shape) != 2 or shape[1] != data.num_classes:
            raise SpecError(
                PARAM,
                f"the logits have shape {list(shape)}; the dataset has {data.num_classes} "
                "classes, so rows of that many logits are needed",
            )
        if shape[0] != data.logit_source_rows:
            raise SpecError(
                PARAM,
                f"the logits file has {shape[0]} rows; the job needs {data.logit_source_rows}: "
                f"one per row of the dataset's x ({data.logit_dataset_rows}), then one per row "
                f"of the transfer set ({data.logit_transfer_rows})",
            )
        if self.logits_test is not None and data.test_logit_rows is None:
            rows = len(self.logits_test)
            if rows != len(data.test) or self.logits_test.shape[1:] != shape[1:]:
                raise SpecError(
                    PARAM,
                    f"logits_test has shape {list(self.logits_test.shape)}; the dataset's "
                    f"x_test needs [{len(data.test)}, {data.num_classes}]",
                )

    def sha256(self) -> str:
        return self.upload.sha256

    def distill_logits(self, part: slice = ALL_ROWS) -> Iterator[np.ndarray]:
        rows = self.data.logit_rows[part]
        for start in range(0, len(rows), BATCH):
            yield self.logits.take(rows[start : start + BATCH]).astype(np.float32)

    def _test_logits(self) -> Iterator[torch.Tensor] | None:
        data = self.data
        if data.test_logit_rows is not None:
            source, rows = self.logits, data.test_logit_rows
        elif self.logits_test is not None:
            source, rows = self.logits_test, np.arange(len(self.logits_test))
        else:
            return None
        return (
            torch.from_numpy(source.take(rows[i : i + BATCH]).astype(np.float32))
            for i in range(0, len(rows), BATCH)
        )

    def evaluate(self) -> dict[str, Any]:
        return {
            "params": None,
            "bytes": None,
            **self.context.task.test_metrics(self._test_logits(), self.data.y_test),
            "latency_ms_cpu": None,
        }
