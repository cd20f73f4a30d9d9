"""frontier: every model the job produced (teacher, baseline, random-init baseline, distilled
student, pruned, int8) measured the same way, in onnxruntime on one CPU thread
(worker/onnx_runtime.py): parameters, bytes of its ONNX graph, batch-1 p50 / p95 latency,
batch-32 throughput, the task's test metrics, the metric as a percentage of the teacher's, and
how often its top-1 agrees with the teacher's on the test split. The report's `frontier`
names the runtime and the CPU; the export stage draws it (frontier.svg).

A teacher without a graph (given as logits) keeps its report metrics and has no timings."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from worker import export, onnx_runtime
from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost

FOLDER = "frontier"


class Frontier(Stage):
    name = "frontier"

    def cost(self, job: JobContext) -> StageCost:
        # The test split through each model's graph (the timings are a few hundred runs).
        test = float(len(job.data.test))
        models = len(_models(job)) - 1
        return StageCost(teacher_inferred=test, student_inferred=models * test)

    def run(self, job: JobContext) -> None:
        data, task = job.data, job.task
        metric = task.selection[0]
        example = task.example(data, 1)
        teacher_top1: torch.Tensor | None = None
        rows = []
        for name, path in _graphs(job).items():
            row: dict[str, Any] = {"model": name, "params": job.report[name].get("params")}
            if path is None:
                row.update(bytes=None, latency_ms_p50=None, latency_ms_p95=None)
                row["throughput_per_s_batch32"] = None
                row.update({k: v for k, v in job.report[name].items() if k.startswith("test_")})
            else:
                chunks = list(onnx_runtime.logits(path, data.test, task.eval_batch))
                measured = task.measure_logits(iter(chunks), data.y_test)
                top1 = torch.cat([chunk.argmax(-1) for chunk in chunks])
                if name == "teacher":
                    teacher_top1 = top1
                row["bytes"] = path.stat().st_size
                row.update(onnx_runtime.speed(path, example))
                row.update({f"test_{k}": round(v, 4) for k, v in measured.items()})
                if teacher_top1 is not None:
                    agreement = (top1 == teacher_top1).float().mean().item()
                    row["top1_agreement"] = round(agreement, 4)
            rows.append(row)
        teacher = rows[0].get(f"test_{metric}")
        for row in rows:
            value = row.get(f"test_{metric}")
            if teacher and value is not None:
                row[f"{metric}_pct_of_teacher"] = round(100 * value / teacher, 2)
            row.setdefault("top1_agreement", None)
        job.report["frontier"] = {**onnx_runtime.runtime(), "metric": metric, "rows": rows}
        job.event(
            "info",
            "frontier: "
            + "; ".join(
                f"{r['model']} {r.get(f'test_{metric}')} at {r['latency_ms_p50']} ms" for r in rows
            ),
        )


def _models(job: JobContext) -> list[str]:
    """The models the job produced, teacher first, that its report has rows for."""
    names = ["teacher", *job.student_models, "pruned", "int8"]
    return [name for name in names if name in job.report]


def _graphs(job: JobContext) -> dict[str, Path | None]:
    """Each model's ONNX graph: exported here where no stage wrote one (the student's is
    then what the export stage ships as student.onnx)."""
    out = job.workdir / FOLDER
    out.mkdir(exist_ok=True)
    graphs: dict[str, Path | None] = {}
    for name in _models(job):
        if name == "int8":
            graphs[name] = job.built["int8_onnx"]
        elif name == "pruned":
            graphs[name] = job.built["pruned_onnx"]
        elif name == "teacher":
            graphs[name] = _teacher_graph(job, out)
        elif name == "student" and "float_onnx" in job.built:
            graphs[name] = job.built["float_onnx"]
        else:
            model: nn.Module = getattr(job, name)
            graphs[name] = _export(job, model, out, name)
            if name == "student":
                job.built["float_onnx"] = graphs[name]
    return graphs


def _teacher_graph(job: JobContext, out: Path) -> Path | None:
    """The teacher's graph: its source's ONNX file, or its module exported; None (a row
    without timings, and a warning) where the exporter does not take the module."""
    module = job.teacher.module
    if module is None:
        return job.teacher.onnx_graph()
    try:
        return _export(job, module, out, "teacher")
    except Exception as exc:  # the exporter does not take every architecture
        job.event("warning", f"frontier: the teacher could not be exported to ONNX ({exc})"[:2000])
        return None


def _export(job: JobContext, model: nn.Module, out: Path, name: str) -> Path:
    task = job.task
    signature = task.signature(job.data)
    names = (signature["input"]["name"], signature["output"]["name"])
    path = out / f"{name}.onnx"
    export.export_onnx(
        model, task.example(job.data, 2), path, names, dynamic_time=task.dynamic_time
    )
    model.to(job.device)
    return path
