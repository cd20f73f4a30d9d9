"""quantize: when the spec asks (`compress.quantize`), the distilled student's ONNX graph (the
pruned student's, when the spec prunes too) in int8 with onnxruntime.quantization
(torch.ao.quantization is deprecated for removal):

- static: QDQ, per-channel int8 weights, int8 activations whose ranges are calibrated on the
  first `calibration_examples` of the transfer set (when the job has one) or of the training
  split: never a test example;
- dynamic: int8 weights, activations quantised at run time (linear-heavy models);
- auto: static when the student has convolutions, dynamic otherwise.

Both graphs, float and int8, are then measured the same way on the test split in
onnxruntime, on the dataset's raw inputs (what the exported graph takes); the report gains an
`int8` row and the export stage uploads `student.int8.onnx`. When int8 loses more than the
spec's `tolerance`, quantisation-aware distillation (worker/fake_quant.py: the weights trained
as int8 will round them, by KD from the stored labels) and a second quantisation replace it."""

import copy
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from worker import fake_quant, onnx_runtime, tolerance
from worker.causal_lm.module import TokenLm
from worker.data.prepare import Examples
from worker.hf_classifier import TextClassifier
from worker.job_context import JobContext
from worker.stages import recovery
from worker.stages.base import Stage, StageCost, export_graph

OUTPUT = "student.int8.onnx"
QAT = "qat"  # the quantisation-aware training's work files and curves


def asked(job: JobContext) -> dict[str, Any] | None:
    return (job.spec.get("compress") or {}).get("quantize")  # older specs have no compress


def _source(job: JobContext) -> tuple[str, nn.Module]:
    """The model quantised: the pruned student when the spec prunes, else the student."""
    pruned = job.built.get("pruned")
    return ("pruned", pruned) if pruned is not None else ("student", job.student)


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
        if mode_for(_source(job)[1], settings.get("mode", "auto")) == "static":
            calibration = min(settings["calibration_examples"], len(calibration_set(job)))
        # Calibration passes (static), then the test split through the float and int8 graphs.
        return StageCost(student_inferred=float(calibration + 2 * len(job.data.test)))

    def run(self, job: JobContext) -> None:
        settings = asked(job)
        assert settings is not None
        data, task = job.data, job.task
        out = job.workdir / "quantize"
        out.mkdir(exist_ok=True)
        of, student = _source(job)
        example = task.example(data, 2)
        int8_path = out / OUTPUT
        try:
            if of == "pruned":  # the prune stage exported it
                float_path = job.built["pruned_onnx"]
            else:
                float_path = out / "student.float.onnx"
                export_graph(job, student, float_path)
        except Exception as exc:  # the exporter does not take every Hugging Face architecture
            if not isinstance(student, (TokenLm, TextClassifier)):
                raise
            job.event("warning", f"no int8 student: the ONNX exporter failed ({exc})"[:2000])
            job.report.setdefault("checks", {})["int8"] = f"failed: {exc}"[:2000]
            return
        mode = mode_for(student, settings["mode"])
        calibration = _quantize(job, float_path, int8_path, mode, settings)
        feed = onnx_runtime.feed_for(student)

        def measured(path: Path) -> dict[str, Any]:
            chunks = onnx_runtime.logits(path, data.test, task.eval_batch, feed)
            metrics = task.measure_logits(chunks, data.y_test)
            latency = onnx_runtime.latency_ms(path, example, feed=feed)
            return {
                "bytes": path.stat().st_size,
                **{f"test_{k}": round(v, 4) for k, v in metrics.items()},
                "latency_ms_onnxruntime": round(latency, 4),
            }

        rows = {"float": measured(float_path), "int8": measured(int8_path)}
        limit = settings.get("tolerance")
        loss = tolerance.judged(job, "quantize", rows["float"], rows["int8"], limit)
        qat = None
        if loss.get("within") is False and settings.get("qat_epochs"):
            # Quantisation-aware distillation: the student with fake-quantised weights learns
            # from the stored labels again, and its rounded weights are quantised anew.
            post_training = {k: v for k, v in rows["int8"].items() if k.startswith("test_")}
            qat = _trained_with_fake_quantisation(job, student, settings)
            qat_path = out / "student.qat.onnx"
            export_graph(job, qat.pop("model"), qat_path)
            _quantize(job, qat_path, int8_path, mode, settings)
            rows["int8"] = measured(int8_path)
            qat["post_training"] = {**post_training, "loss": loss}
            loss = tolerance.judged(
                job,
                "quantize (after quantisation-aware training)",
                rows["float"],
                rows["int8"],
                limit,
            )
        job.report["int8"] = {
            "of": of,
            "mode": mode,
            "calibration": calibration,
            "params": job.report[of]["params"],
            **rows["int8"],
            "float_onnx": rows["float"],
            "loss": loss,
            "qat": qat,
        }
        job.report["compression"]["int8_size_ratio"] = round(
            rows["float"]["bytes"] / rows["int8"]["bytes"], 2
        )
        # The export stage uploads the int8 graph, and ships the float one as student.onnx
        # when the spec asks for ONNX rather than exporting the same student again.
        job.built["int8_onnx"] = int8_path
        if of == "student":
            job.built["float_onnx"] = float_path
        metric = task.selection[0]
        job.event(
            "info",
            f"quantize: int8 ({mode}) {rows['int8']['bytes']} bytes against "
            f"{rows['float']['bytes']}; test {metric} {rows['int8'][f'test_{metric}']} against "
            f"{rows['float'][f'test_{metric}']} (onnxruntime)",
            job.report["int8"],
        )


def _quantize(
    job: JobContext, source: Path, target: Path, mode: str, settings: dict[str, Any]
) -> dict[str, Any] | None:
    """`source` in int8 at `target`; what static calibration read (None: dynamic)."""
    if mode != "static":
        _quantize_dynamic(source, target)
        return None
    calibration = calibration_set(job)
    count = min(settings["calibration_examples"], len(calibration))
    name = job.task.signature(job.data)["input"]["name"]
    dtype = job.task.example(job.data, 1).dtype
    _quantize_static(source, target, name, calibration.head(count).to(dtype).numpy())
    return {"split": "transfer" if calibration is job.data.transfer else "train", "examples": count}


def _trained_with_fake_quantisation(
    job: JobContext, student: nn.Module, settings: dict[str, Any]
) -> dict[str, Any]:
    """A copy of `student` trained with fake-quantised weights (worker/fake_quant.py) by KD
    from the stored labels, its weights then rounded (`model`), and how it was trained."""
    model = copy.deepcopy(student).to(job.device)
    layers = fake_quant.fake_quantise(model)
    trained = recovery.recovery_settings(job, settings["qat_epochs"], settings.get("qat_lr"))
    recovery.recover(job, model, trained, QAT)
    fake_quant.bake(model)
    return {
        "model": model.eval(),
        "layers": layers,
        "epochs": trained["epochs"],
        "lr": float(f"{trained['lr']:.6g}"),
        "labels": recovery.labels(job),
    }


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
