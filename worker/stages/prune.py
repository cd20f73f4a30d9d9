"""prune: when the spec asks (`compress.prune`), a copy of the distilled student with whole
channel groups removed (worker/pruning.py: torch-pruning's DepGraph) until its parameter count
or its measured latency meets the target, then a short recovery: `kd` from the teacher's
stored soft labels (the teacher does not run again), at a tenth of the distillation's learning
rate unless the spec names one. The report gains a `pruned` row (its test metrics before and
after recovery), and `student.pruned.onnx` is uploaded; the quantize stage, when asked too,
quantises the pruned student."""

import copy
import json
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from distillery.types.catalog import SpecError
from worker import export, pruning, tolerance
from worker.batch import Batch
from worker.job_context import JobContext
from worker.stages import recovery
from worker.stages.base import Stage, StageCost, export_graph, student_training
from worker.stages.distill import MethodRun, method_loss, method_run
from worker.train import epoch_order

OUTPUT = "student.pruned.onnx"
NAME = "pruned"  # its work files (pruned.json, pruned.ckpt, pruned.safetensors), its curves
# Batches whose KD-loss gradients rank channels for the taylor importance.
TAYLOR_BATCHES = 4


def asked(job: JobContext) -> dict[str, Any] | None:
    return (job.spec.get("compress") or {}).get("prune")  # older specs have no compress


class Prune(Stage):
    name = "prune"

    def applies(self, job: JobContext) -> bool:
        return asked(job) is not None

    def cost(self, job: JobContext) -> StageCost:
        prune = asked(job) or {}
        epochs = prune.get("recovery_epochs", 0)
        test = float(len(job.data.test))
        if not epochs:
            return StageCost(student_inferred=2 * test)
        cost = student_training(job, epochs)
        # The test split before and after recovery.
        return replace(cost, student_inferred=cost.student_inferred + 2 * test)

    def run(self, job: JobContext) -> None:
        prune = asked(job)
        assert prune is not None
        data, task = job.data, job.task
        student = job.student.eval()
        model = copy.deepcopy(student)
        settings = recovery.recovery_settings(job, prune["recovery_epochs"], prune["recovery_lr"])
        with method_run(job, settings, model) as run:
            result = _pruned(job, prune, model, run)
        before = task.measure(model, data.test, data.y_test)
        model.to(job.device)
        recovery.recover(job, model, settings, NAME)
        model.eval()
        after = task.measure(model, data.test, data.y_test)
        example = task.example(data, 2)
        out = job.workdir / "prune"
        out.mkdir(exist_ok=True)
        path = out / OUTPUT
        export_graph(job, model, path)
        signature = task.signature(data)
        names = (signature["input"]["name"], signature["output"]["name"])
        diff = export.onnx_max_abs_diff(model, path, task.example(data, 256), names)
        weights = job.workdir / f"{NAME}.safetensors"
        if not weights.exists():  # no recovery: the pruned weights as they are
            job.outputs.save_output(model, NAME)
        job.report[NAME] = {
            "params": result.params_after,
            "bytes": weights.stat().st_size,
            **{f"test_{k}": round(v, 4) for k, v in after.items()},
            "latency_ms_cpu": round(export.cpu_latency_ms(model, example), 4),
            "pruning": {
                "method": pruning.METHOD,
                "importance": prune["importance"],
                "target": _target(prune),
                "steps": result.steps,
                "channel_ratio": result.channel_ratio,
                "channels": {
                    name: [width, pruned]
                    for (name, width), pruned in zip(
                        pruning.channels(student).items(),
                        pruning.channels(model).values(),
                        strict=True,
                    )
                    if width != pruned
                },
                "before_recovery": {f"test_{k}": round(v, 4) for k, v in before.items()},
                "recovery": {
                    "method": "kd",
                    "epochs": settings["epochs"],
                    "lr": float(f"{settings['lr']:.6g}"),
                    "labels": recovery.labels(job),
                },
            },
            "onnx_max_abs_diff": diff,
        }
        job.report[NAME]["loss"] = tolerance.judged(
            job, "prune", job.report["student"], job.report[NAME], prune.get("tolerance")
        )
        compression = job.report["compression"]
        compression["pruned_param_ratio"] = round(result.params_before / result.params_after, 2)
        model.to(job.device)
        job.built[NAME], job.built["pruned_onnx"] = model, path
        metric = task.selection[0]
        job.event(
            "info",
            f"prune: {result.params_before} -> {result.params_after} parameters "
            f"({result.steps} steps of {pruning.STEP_RATIO:.0%} of the channels); test {metric} "
            f"{before[metric]:.4f} after pruning, {after[metric]:.4f} after recovery",
            {"params": result.params_after, "steps": result.steps},
        )


def _target(prune: dict[str, Any]) -> dict[str, float]:
    key = "params_ratio" if prune["params_ratio"] is not None else "latency_ratio"
    return {key: prune[key]}


def _pruned(
    job: JobContext, prune: dict[str, Any], model: nn.Module, run: MethodRun
) -> pruning.PruneResult:
    """Prune `model` in place to the spec's target; a resumed job replays the recorded number
    of steps (a latency target is measured, so it would not find the same again)."""
    example = job.task.example(job.data, 2).to(job.device)
    gradients = _taylor_gradients(job, run) if prune["importance"] == "taylor" else None
    record = job.workdir / f"{NAME}.json"
    if record.exists():
        steps = json.loads(record.read_text())["steps"]
        return pruning.prune(model, example, prune["importance"], steps=steps, gradients=gradients)
    try:
        result = pruning.prune(
            model, example, prune["importance"], _reached(job, prune), gradients=gradients
        )
    except pruning.CannotPrune as exc:
        raise SpecError("compress.prune", str(exc)) from None
    record.write_text(json.dumps({"steps": result.steps}))
    job.outputs.push(record)
    return result


def _reached(job: JobContext, prune: dict[str, Any]) -> Any:
    """Whether a model meets the spec's target, against the distilled student."""
    student = job.student
    if prune["params_ratio"] is not None:
        limit = prune["params_ratio"] * sum(p.numel() for p in student.parameters())
        return lambda m: sum(p.numel() for p in m.parameters()) <= limit
    example = job.task.example(job.data, 1)
    latency = prune["latency_ratio"] * export.cpu_latency_ms(student, example)
    student.to(job.device)

    def fast_enough(m: nn.Module) -> bool:
        measured = export.cpu_latency_ms(m, example)
        m.to(job.device)
        return measured <= latency

    return fast_enough


def _taylor_gradients(job: JobContext, run: MethodRun) -> pruning.Gradients:
    """The KD loss's gradients over the first batches of distillation's first epoch (the
    views and stored labels it trained on)."""
    n = len(run.x)
    order = epoch_order(n, n, job.seed, 0)
    size = job.distill_settings["batch_size"]
    temperature = float(job.distill_settings["temperature"])
    loss = method_loss(run)

    def gradients(m: nn.Module) -> None:
        for start in range(0, min(n, TAYLOR_BATCHES * size), size):
            positions = torch.arange(start, min(start + size, n))
            batch = Batch(order[positions], 0, positions, temperature, order)
            loss(m, batch).backward()

    return gradients
