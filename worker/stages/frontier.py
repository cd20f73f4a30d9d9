"""frontier: every model the job produced (teacher, baseline, random-init baseline, distilled
student, pruned, int8) measured the same way, in onnxruntime on one CPU thread
(worker/onnx_runtime.py): parameters, bytes of its ONNX graph, batch-1 p50 / p95 latency,
batch-32 throughput, the task's test metrics, the metric as a percentage of the teacher's, and
how often its top-1 agrees with the teacher's on the test split. The report's `frontier`
names the runtime and the CPU; the export stage draws it (frontier.svg). For a language model
the metric is per token and top-1 agreement is over every position.

A teacher without a graph (given as logits) keeps its report metrics and has no timings."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worker import onnx_runtime, tolerance
from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost, export_graph

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
        metric, _ = tolerance.test_metric(job)
        example = task.example(data, 1)
        teacher_top1: torch.Tensor | None = None
        rows = []
        for name, (path, feed) in _graphs(job).items():
            row: dict[str, Any] = {"model": name, "params": job.report[name].get("params")}
            if path is None:
                row.update(bytes=None, latency_ms_p50=None, latency_ms_p95=None)
                row["throughput_per_s_batch32"] = None
                row.update({k: v for k, v in job.report[name].items() if k.startswith("test_")})
            else:
                top1s: list[torch.Tensor] = []
                chunks = _recording_top1(
                    onnx_runtime.logits(path, data.test, task.eval_batch, feed), top1s
                )
                measured = task.measure_logits(chunks, data.y_test)
                top1 = torch.cat(top1s)
                if name == "teacher":
                    teacher_top1 = top1
                row["bytes"] = path.stat().st_size
                row.update(onnx_runtime.speed(path, example, feed))
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


def _recording_top1(
    chunks: Iterator[torch.Tensor], top1s: list[torch.Tensor]
) -> Iterator[torch.Tensor]:
    """The chunks as they come, each one's top-1 kept on the way (a language model's logits of
    the whole test split would not fit in memory at once)."""
    for chunk in chunks:
        top1s.append(chunk.argmax(-1))
        yield chunk


def _models(job: JobContext) -> list[str]:
    """The models the job produced, teacher first, that its report has rows for."""
    names = ["teacher", *job.student_models, "pruned", "int8"]
    return [name for name in names if name in job.report]


def _graphs(job: JobContext) -> dict[str, tuple[Path | None, onnx_runtime.Feed | None]]:
    """Each model's ONNX graph and its feed (None: the raw examples): exported here where no
    stage wrote one (the student's is then what the export stage ships as student.onnx). A
    model the exporter does not take (some Hugging Face architectures) keeps a row without
    timings, and the job a warning."""
    out = job.workdir / FOLDER
    out.mkdir(exist_ok=True)
    written = {
        "int8": job.built.get("int8_onnx"),
        "pruned": job.built.get("pruned_onnx"),
        "student": job.built.get("float_onnx"),
    }
    graphs: dict[str, tuple[Path | None, onnx_runtime.Feed | None]] = {}
    for name in _models(job):
        model = _model(job, name)
        feed = onnx_runtime.feed_for(model)
        if written.get(name) is not None:
            graphs[name] = (written[name], feed)
            continue
        if model is None:  # a teacher without a module: its source's own graph, if any
            graphs[name] = (job.teacher.onnx_graph(), None)
            continue
        path = out / f"{name}.onnx"
        try:
            export_graph(job, model, path)
        except Exception as exc:  # the exporter does not take every architecture
            job.event("warning", f"frontier: no ONNX graph of the {name} ({exc})"[:2000])
            graphs[name] = (None, None)
            continue
        graphs[name] = (path, feed)
        if name == "student":
            job.built["float_onnx"] = path
    return graphs


def _model(job: JobContext, name: str) -> nn.Module | None:
    """The PyTorch model behind a row (the int8 row's: the model that was quantised)."""
    if name == "teacher":
        return job.teacher.module
    if name in ("int8", "pruned"):
        pruned = job.built.get("pruned")
        return job.student if pruned is None and name == "int8" else pruned
    return getattr(job, name)
