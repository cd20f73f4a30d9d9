"""quantize: when the spec asks (`compress.quantize`), the distilled student's ONNX graph in
int8 with onnxruntime.quantization (torch.ao.quantization is deprecated for removal):

- static: QDQ, per-channel int8 weights, int8 activations whose ranges are calibrated on the
  first `calibration_examples` of the transfer set (when the job has one) or of the training
  split: never a test example;
- dynamic: int8 weights, activations quantised at run time (linear-heavy models);
- auto: static when the student has convolutions, dynamic otherwise.

Both graphs, float and int8, are then measured the same way on the test split in
onnxruntime, on the dataset's raw inputs (what the exported graph takes); the report gains an
`int8` row and the export stage uploads `student.int8.onnx`."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from worker import export
from worker.causal_lm.module import TokenLm
from worker.data.prepare import Examples
from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost

OUTPUT = "student.int8.onnx"


def asked(job: JobContext) -> dict[str, Any] | None:
    return (job.spec.get("compress") or {}).get("quantize")  # older specs have no compress


def calibration_set(job: JobContext) -> Examples:
    """Where the static ranges come from: the transfer set, else the training split."""
    data = job.data
    return data.transfer if len(data.transfer) else data.train


def mode_for(student: nn.Module, mode: str) -> str:
    if mode != "auto":
        return mode
    convolutions = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return "static" if any(isinstance(m, convolutions) for m in student.modules()) else "dynamic"


class Quantize(Stage):
    name = "quantize"

    def applies(self, job: JobContext) -> bool:
        return asked(job) is not None

    def cost(self, job: JobContext) -> StageCost:
        settings = asked(job) or {}
        calibration = 0
        if mode_for(job.student, settings.get("mode", "auto")) == "static":
            calibration = min(settings["calibration_examples"], len(calibration_set(job)))
        # Calibration passes (static), then the test split through the float and int8 graphs.
        return StageCost(student_inferred=float(calibration + 2 * len(job.data.test)))

    def run(self, job: JobContext) -> None:
        settings = asked(job)
        assert settings is not None
        data, task = job.data, job.task
        out = job.workdir / "quantize"
        out.mkdir(exist_ok=True)
        student = job.student.cpu().eval()
        signature = task.signature(data)
        names = (signature["input"]["name"], signature["output"]["name"])
        example = task.example(data, 2)
        float_path, int8_path = out / "student.float.onnx", out / OUTPUT
        try:
            export.export_onnx(student, example, float_path, names, dynamic_time=task.dynamic_time)
        except Exception as exc:  # the exporter does not take every Hugging Face architecture
            if not isinstance(student, TokenLm):
                raise
            job.student.to(job.device)
            job.event("warning", f"no int8 student: the ONNX exporter failed ({exc})"[:2000])
            job.report.setdefault("checks", {})["int8"] = f"failed: {exc}"[:2000]
            return
        mode = mode_for(student, settings["mode"])
        calibration = calibration_set(job)
        count = min(settings["calibration_examples"], len(calibration))
        if mode == "static":
            inputs = calibration.head(count).to(example.dtype).numpy()
            _quantize_static(float_path, int8_path, names[0], inputs)
        else:
            _quantize_dynamic(float_path, int8_path)
        job.student.to(job.device)
        rows = {}
        for name, path in (("float", float_path), ("int8", int8_path)):
            chunks = _onnx_logits(path, names, data.test, example.dtype, task.eval_batch)
            measured = task.measure_logits(chunks, data.y_test)
            rows[name] = {
                "bytes": path.stat().st_size,
                **{f"test_{k}": round(v, 4) for k, v in measured.items()},
                "latency_ms_onnxruntime": round(_latency_ms(path, names[0], example), 4),
            }
        where = "transfer" if calibration is data.transfer else "train"
        job.report["int8"] = {
            "mode": mode,
            "calibration": {"split": where, "examples": count} if mode == "static" else None,
            "params": job.report["student"]["params"],
            **rows["int8"],
            "float_onnx": rows["float"],
        }
        job.report["compression"]["int8_size_ratio"] = round(
            rows["float"]["bytes"] / rows["int8"]["bytes"], 2
        )
        # The export stage uploads the int8 graph, and ships the float one as student.onnx
        # when the spec asks for ONNX rather than exporting the same student again.
        job.built["int8_onnx"], job.built["float_onnx"] = int8_path, float_path
        metric = task.selection[0]
        job.event(
            "info",
            f"quantize: int8 ({mode}) {rows['int8']['bytes']} bytes against "
            f"{rows['float']['bytes']}; test {metric} {rows['int8'][f'test_{metric}']} against "
            f"{rows['float'][f'test_{metric}']} (onnxruntime)",
            job.report["int8"],
        )


def _quantize_static(source: Path, target: Path, input_name: str, inputs: np.ndarray) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(inputs, max(1, len(inputs) // 32)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    quantize_static(
        str(source),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
    )


def _quantize_dynamic(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


def _session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_logits(
    path: Path, names: tuple[str, str], x: Examples, dtype: torch.dtype, batch: int
) -> Iterator[torch.Tensor]:
    """Logits of `x` through the graph at `path`, `batch` examples a run (the task's eval
    batch: a language model's windows hold a vocabulary-wide row per token)."""
    session = _session(path)
    for chunk in x.chunks(batch):
        feed = {names[0]: chunk.to(dtype).numpy()}
        yield torch.from_numpy(session.run([names[1]], feed)[0])


def _latency_ms(path: Path, input_name: str, example: torch.Tensor, runs: int = 50) -> float:
    """Median batch-1 latency on one CPU thread in onnxruntime, after warm-up."""
    session = _session(path, threads=1)
    feed = {input_name: example[:1].numpy()}
    for _ in range(5):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)
