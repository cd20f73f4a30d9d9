"""`onnx`: any framework's model exported to ONNX, run by onnxruntime to label the data.

The model gets the dataset's raw inputs as float32 (0..255 pixels for images; no normalisation
from the service), or for a text dataset its UTF-8 bytes padded with byte 0 as uint8 or int64,
and must answer (batch, classes) logits.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillery.types.catalog import SpecError
from worker.teachers.registry import ALL_ROWS, TEACHER_SOURCES, TeacherSource, median_latency_ms
from worker.uploads import UploadedFile

PARAM = "teacher.file_id"
BATCH = 1024
# The input types a teacher may take: floats for numbers, byte ids for text.
INPUT_TYPES = {"tensor(float)": np.float32}
TEXT_INPUT_TYPES = {"tensor(uint8)": np.uint8, "tensor(int64)": np.int64}


@TEACHER_SOURCES.register("onnx")
class OnnxTeacher(TeacherSource):
    name = "onnx"
    preprocessing = "raw-float32-v1"
    upload: UploadedFile

    def onnx_graph(self) -> Path:
        return Path(self.path)

    def validate(self) -> None:
        import onnxruntime

        self.upload = self.uploaded(
            "teacher", "onnx", "ONNX; safetensors weights are a teacher with source 'weights'"
        )
        data = self.data
        providers = ["CPUExecutionProvider"]
        if (
            self.context.device.type == "cuda"
            and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        path = str(self.upload.local_path())
        try:
            self.session = onnxruntime.InferenceSession(path, providers=providers)
        except Exception as exc:
            raise SpecError(PARAM, f"onnxruntime cannot load the teacher: {exc}") from None
        self.path = path
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise SpecError(PARAM, f"the teacher takes {len(inputs)} inputs {names}; it needs 1")
        given = inputs[0]
        self.input_name = given.name
        text = data.modality == "text"
        allowed = TEXT_INPUT_TYPES if text else INPUT_TYPES
        if given.type not in allowed:
            raise SpecError(
                PARAM,
                f"the teacher's input is {given.type}; for "
                + (
                    "a text dataset it must be uint8 or int64 bytes"
                    if text
                    else "it must be float32"
                ),
            )
        self.input_dtype = allowed[given.type]
        wanted = [None, *data.input_shape]
        shape = list(given.shape)
        fits = len(shape) == len(wanted) and all(
            not isinstance(d, int) or w is None or d == w
            for d, w in zip(shape, wanted, strict=True)
        )
        if not fits:
            raise SpecError(
                PARAM,
                f"the teacher takes input of shape {shape}; the dataset's examples are "
                f"{list(data.input_shape)} (with a batch dimension first)",
            )
        self.batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        out_shape = list(outputs[0].shape)
        classes = out_shape[-1] if out_shape else None
        if isinstance(classes, int) and classes != data.num_classes:
            raise SpecError(
                PARAM,
                f"the teacher outputs {classes} classes; the dataset has {data.num_classes}",
            )
        try:
            probe = self._run(data.test.head(2).numpy())
        except Exception as exc:
            raise SpecError(PARAM, f"the teacher fails on the dataset's inputs: {exc}") from None
        if probe.ndim != 2 or probe.shape[1] != data.num_classes:
            raise SpecError(
                PARAM,
                f"the teacher answers shape {list(probe.shape)} for 2 examples; "
                f"expected [2, {data.num_classes}]",
            )

    def _run(self, x: np.ndarray, session: Any = None) -> np.ndarray:
        """Logits for x, in the model's batch size when it has a fixed one."""
        session = session or self.session
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        if self.batch is None:
            return np.asarray(session.run(None, {self.input_name: x})[0], dtype=np.float32)
        out = []
        for start in range(0, len(x), self.batch):
            part = x[start : start + self.batch]
            padded = np.zeros((self.batch, *x.shape[1:]), dtype=self.input_dtype)
            padded[: len(part)] = part
            out.append(np.asarray(session.run(None, {self.input_name: padded})[0])[: len(part)])
        return np.concatenate(out).astype(np.float32, copy=False)

    def sha256(self) -> str:
        return self.upload.sha256

    def distill_logits(self, rows: slice = ALL_ROWS) -> Iterator[np.ndarray]:
        for chunk in self.data.distill.part(rows).chunks(BATCH):
            yield self._run(chunk.numpy())

    def val_logits(self) -> Iterator[torch.Tensor]:
        return (torch.from_numpy(self._run(c.numpy())) for c in self.data.val.chunks(BATCH))

    def evaluate(self) -> dict[str, Any]:
        import onnxruntime

        data = self.data
        chunks = (torch.from_numpy(self._run(c.numpy())) for c in data.test.chunks(BATCH))
        metrics = self.context.task.test_metrics(chunks, data.y_test)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        cpu = onnxruntime.InferenceSession(
            self.path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        example = data.test.head(1).numpy()
        latency = median_latency_ms(lambda: self._run(example, cpu))
        params = self.upload.info.get("params")
        if params is None:
            params = _initializer_values(self.path)
        return {
            "params": int(params),
            "bytes": self.upload.bytes,
            **metrics,
            "latency_ms_cpu": round(latency, 4),
        }


def _initializer_values(path: str) -> int:
    """Values stored in the graph's initializers (its weights; a few are constants)."""
    import math

    import onnx

    model = onnx.load(path, load_external_data=False)
    return sum(math.prod(t.dims) for t in model.graph.initializer)
