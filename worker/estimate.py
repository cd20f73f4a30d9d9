"""Estimates: the work a job implies, stage by stage (examples through each model, optimiser
steps, FLOPs, soft-label bytes, from each stage's `cost`), and its wall time on each device
kind this worker has, from a short measured dry run: a few real training and inference steps
of the job's teacher and student on its own data, and its data preparation and export timed
as they run.

`POST /v1/jobs/estimate` runs `estimate_spec` on a worker (app.dispatch sends it: a
`python -m worker.estimate` process in embedded mode, the `distillery.estimate` Celery task
otherwise); a job runs `estimate` on its own device after validate (worker.pipeline), and puts
what actually happened beside it when it ends.

FLOPs are counted by torch.utils.flop_counter on one forward pass (matrix multiplications and
convolutions, a multiply-add being two); a training example costs three forwards. A stage's
wall time is its examples times the measured seconds per example of that kind of work, plus
what was timed whole (validate, export, the latency measurements of evaluate)."""

import copy
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from app.settings import Settings, get_settings
from app.store import make_store
from distillery.types.catalog import SpecError
from worker import export
from worker.batch import Batch
from worker.control import JobControl
from worker.job_context import JobContext
from worker.kd import build_method
from worker.learning_tasks import task_for
from worker.precision import Precision, plan_precision
from worker.softlabels import StoredLogits, entry_of
from worker.stages import STAGES, Stage
from worker.stages.base import StageCost
from worker.stages.distill import method_run
from worker.train import make_optimizer, optimiser_step

# A measurement times steps (after two for warm-up) until it has at least MIN_TIMED_STEPS
# of them over at least MIN_TIMED_SECONDS, or MAX_TIMED_STEPS, or once it has taken
# MAX_TIMED_SECONDS (a step of a large model on a CPU: one may be all there is time for).
MIN_TIMED_STEPS = 3
MIN_TIMED_SECONDS = 0.3
MAX_TIMED_STEPS = 50
MAX_TIMED_SECONDS = 1.5
INFERENCE_BATCH = 512
# evaluate measures each model's batch-1 CPU latency over this many calls (warm-up included).
LATENCY_CALLS = 55

WORK_KINDS = (
    "teacher_trained",
    "teacher_inferred",
    "student_trained",
    "student_distilled",
    "student_inferred",
)


class DryRunControl(JobControl):
    """What a dry run reports to: events are kept (they come back with the estimate), and
    nothing is written to a job's rows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.job_id = "estimate"
        self.owner = "estimate"
        self.events: list[dict[str, Any]] = []

    def check(self) -> None:
        pass

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.events.append({"kind": kind, "message": message})


@dataclass
class Timed:
    """What a dry run timed whole, in seconds (device independent: data and CPU work)."""

    validate: float = 0.0
    export: float = 0.0
    latency_call: float = 0.0  # one round of evaluate's batch-1 calls of every model
    dry_run: float = 0.0  # the estimate itself, after validate


def device_kinds() -> list[torch.device]:
    """The device kinds this worker can run a job on: the CPU, and CUDA where it has it."""
    kinds = [torch.device("cpu")]
    if torch.cuda.is_available():
        kinds.append(torch.device("cuda"))
    return kinds


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _per_example(run: Callable[[], int], device: torch.device) -> float:
    """Seconds per example of `run` (which returns how many examples it did), after two
    warm-up calls (the first allocates, the optimiser's state among it)."""
    for _ in range(2):
        run()
    _sync(device)
    examples, started = 0, time.perf_counter()
    for step in range(1, MAX_TIMED_STEPS + 1):
        examples += run()
        _sync(device)
        elapsed = time.perf_counter() - started
        enough = step >= MIN_TIMED_STEPS and elapsed >= MIN_TIMED_SECONDS
        if enough or elapsed >= MAX_TIMED_SECONDS:
            break
    return (time.perf_counter() - started) / max(examples, 1)


def _training_rate(
    job: JobContext, model: nn.Module, precision: Precision, settings: dict[str, Any]
) -> float:
    """Seconds per example of a training step of `model` on the first train batch, with the
    optimiser `settings` (the teacher's pretraining or the distillation) and the spec's
    augmentation (drawn anew at each step, as training does)."""
    data = job.data
    index = torch.arange(min(settings["batch_size"], len(data.train)))
    batch = Batch(index, 0, torch.arange(len(index)), None, torch.arange(len(data.train)))
    batch_loss = job.trainer.hard_label_loss(data.train, data.y_train)
    return _step_rate(model, settings, precision, lambda: batch_loss(model, batch), len(index))


def _step_rate(
    model: nn.Module,
    settings: dict[str, Any],
    precision: Precision,
    loss: Callable[[], torch.Tensor],
    examples: int,
) -> float:
    """Seconds per example of optimiser steps of `model` on `loss` (a batch of `examples`),
    taken as the training loop takes them."""
    optimizer = make_optimizer(model, settings)
    scaler = precision.scaler()
    model.train()

    def step() -> int:
        optimiser_step(loss, optimizer, scaler, precision)
        return examples

    return _per_example(step, precision.device)


def _distillation_rate(job: JobContext, model: nn.Module, precision: Precision) -> float | None:
    """Seconds per example of a distillation step with the job's method, as the distill stage
    takes it: the teacher's labels read from an entry in the store's format (the student's own
    logits stand in for them). None for a method that reads the models' layers (the teacher
    then runs online, counted as its own work) or learns from the teacher's text: a hard-label
    step stands for those."""
    settings = job.distill_settings
    method = build_method(settings)
    if method.student_layers() or method.teacher_layers() or not method.reads_teacher_logits:
        return None
    task, device = job.task, precision.device
    x, y = job.distill_set()
    index = torch.arange(min(settings["batch_size"], len(x)))
    temperature = float(settings["temperature"])
    batch = Batch(index, 0, torch.arange(len(index)), temperature, torch.arange(len(x)))
    model.eval()
    with torch.no_grad():
        logits, _ = task.rows(model(job.views(x, batch).inputs), y[index].to(device))
    entry = entry_of(
        logits.float(),
        settings.get("soft_label_top_k"),
        settings.get("soft_label_tail_samples") or 0,
    )
    stored = StoredLogits(entry, device, None, task.positions(job.data))
    with method_run(replace(job, stored_logits=stored)) as run:

        def loss() -> torch.Tensor:
            student, teacher, labels = run.outputs(model, batch)
            return run.method.loss(student, teacher, labels, temperature=temperature)

        return _step_rate(model, settings, precision, loss, len(index))


def _inference_rate(job: JobContext, model: nn.Module, precision: Precision) -> float:
    data, device = job.data, precision.device
    # No more windows than the task evaluates at once (a large vocabulary makes each big).
    index = torch.arange(min(INFERENCE_BATCH, job.task.eval_batch, len(data.distill)))
    x = precision.inputs(data.distill.batch(index, device))
    model.eval()

    def forward() -> int:
        with torch.no_grad(), precision.forward():
            model(x)
        return len(index)

    return _per_example(forward, device)


def _teacher_file_rate(job: JobContext) -> float:
    """A teacher without a PyTorch model (ONNX, uploaded logits): its own batches, timed."""
    batches = iter(job.teacher.distill_logits())
    started = time.perf_counter()
    first = next(batches, None)
    seconds, rows = time.perf_counter() - started, len(first) if first is not None else 0
    started = time.perf_counter()
    second = next(batches, None)
    if second is not None:  # the first one paid for loading the model
        seconds, rows = time.perf_counter() - started, len(second)
    return seconds / max(rows, 1)


def measure_rates(job: JobContext, device: torch.device) -> dict[str, float]:
    """Seconds per example of each kind of work on `device`, from a few real steps of copies
    of the job's models (its own stay as they are)."""
    plan = plan_precision(job.settings, device, job.data.input_shape, job.arithmetic)
    precision = replace(plan, compile=False)
    # The job's context on `device`: its views (augmented, in the device's memory format).
    job = replace(job, device=device, built={**job.built, "precision": precision})
    student = copy.deepcopy(job.student).to(device)
    rates = {
        "student_trained": _training_rate(job, student, precision, job.distill_settings),
        "student_inferred": _inference_rate(job, student, precision),
    }
    distilled = _distillation_rate(job, copy.deepcopy(job.student).to(device), precision)
    rates["student_distilled"] = rates["student_trained"] if distilled is None else distilled
    module = job.teacher.module
    if module is None:
        rates["teacher_inferred"] = _teacher_file_rate(job)
        rates["teacher_trained"] = 0.0
    else:
        teacher = copy.deepcopy(module).to(device)
        rates["teacher_inferred"] = _inference_rate(job, teacher, precision)
        train = job.spec["teacher"].get("train")
        rates["teacher_trained"] = _training_rate(job, teacher, precision, train) if train else 0.0
    return {kind: rates[kind] for kind in WORK_KINDS}


def flops_per_example(job: JobContext, model: nn.Module | None) -> int | None:
    """FLOPs of one forward pass over one example (None: not a PyTorch model)."""
    if model is None:
        return None
    model = copy.deepcopy(model).cpu().eval()
    x = job.data.distill.batch(torch.arange(min(2, len(job.data.distill))), torch.device("cpu"))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return math.ceil(counter.get_total_flops() / len(x))


def time_export(job: JobContext) -> float:
    """Export the (untrained) student in the spec's formats, as the export stage does: twice,
    timing the second (the first loads the exporters, which the job's export finds loaded)."""
    _export(job)
    started = time.perf_counter()
    _export(job)
    return time.perf_counter() - started


def _export(job: JobContext) -> None:
    student = copy.deepcopy(job.student).cpu().eval()
    task, data = job.task, job.data
    names = tuple(task.signature(data)[k]["name"] for k in ("input", "output"))
    with tempfile.TemporaryDirectory() as folder:
        for fmt in job.spec["export"]:
            path = Path(folder) / f"student.{fmt}"
            if fmt == "safetensors":
                export.save_safetensors(student, path)
            elif fmt == "onnx":
                example = task.example(data, 2)
                export.export_onnx(student, example, path, names, dynamic_time=task.dynamic_time)
                export.onnx_max_abs_diff(student, path, task.example(data, 256), names)
            else:
                export.export_torchscript(student, task.example(data, 2), path)


def time_latency_call(job: JobContext) -> float:
    """One batch-1 CPU call of each model evaluate measures the latency of."""
    example = job.task.example(job.data, 1)
    models = [job.student] * len(job.student_models)
    if job.teacher.module is not None:
        models.append(job.teacher.module)
    total = 0.0
    for model in models:
        clone = copy.deepcopy(model)
        total += export.cpu_latency_ms(clone, example, runs=5) / 1000
    return total


def stage_costs(job: JobContext, stages: Iterable[Stage]) -> dict[str, StageCost]:
    return {stage.name: stage.cost(job) for stage in stages if stage.applies(job)}


def _flops(cost: StageCost, teacher: int | None, student: int | None) -> int | None:
    if (cost.teacher_trained or cost.teacher_inferred) and teacher is None:
        return None
    t, s = teacher or 0, student or 0
    work = 3 * (cost.teacher_trained * t + (cost.student_trained + cost.student_distilled) * s)
    return round(work + cost.teacher_inferred * t + cost.student_inferred * s)


def wall_seconds(
    costs: dict[str, StageCost], rates: dict[str, float], timed: Timed
) -> dict[str, float]:
    """Each stage's predicted seconds, from the work it implies and the measured rates; and
    after validate, the job's own dry run (`estimate`)."""
    out = {}
    for name, cost in costs.items():
        if name == "estimate":
            out[name] = round(timed.dry_run, 2)
            continue
        seconds = sum(getattr(cost, kind) * rates[kind] for kind in WORK_KINDS)
        seconds += {
            "validate": timed.validate,
            "evaluate": timed.latency_call * LATENCY_CALLS,
            "export": timed.export,
        }.get(name, 0.0)
        out[name] = round(seconds, 2)
    return out


def estimate(job: JobContext, devices: list[torch.device], timed: Timed) -> dict[str, Any]:
    """The estimate of a job whose validate stage has run (timed.validate: how long it took).
    The global RNG is left as it was: the timed steps run as many times as the machine's
    speed allows, and their dropout draws would otherwise leave every later training (a
    fine-tuned teacher's, the student's) depending on how fast the machine was."""
    cuda = [d.index or 0 for d in devices if d.type == "cuda"]
    with torch.random.fork_rng(devices=cuda):
        return _estimate(job, devices, timed)


def _estimate(job: JobContext, devices: list[torch.device], timed: Timed) -> dict[str, Any]:
    started = time.perf_counter()
    timed.export = time_export(job)
    timed.latency_call = time_latency_call(job)
    costs = stage_costs(job, STAGES)
    teacher_flops = flops_per_example(job, job.teacher.module)
    student_flops = flops_per_example(job, job.student)
    flops = {name: _flops(cost, teacher_flops, student_flops) for name, cost in costs.items()}
    stages = {name: {**cost.as_dict(), "flops": flops[name]} for name, cost in costs.items()}
    all_flops = list(flops.values())
    teacher_passes = sum(c.teacher_trained + c.teacher_inferred for c in costs.values())
    totals = {
        "teacher_passes": round(teacher_passes),
        "teacher_steps": costs["pretrain_teacher"].steps if "pretrain_teacher" in costs else 0,
        "student_steps": sum(c.steps for n, c in costs.items() if n != "pretrain_teacher"),
        "flops": None if None in all_flops else sum(f or 0 for f in all_flops),
        "soft_label_bytes": sum(c.soft_label_bytes for c in costs.values()),
        "soft_label_shards": sum(c.soft_label_shards for c in costs.values()),
    }
    rates = {device.type: measure_rates(job, device) for device in devices}
    timed.dry_run = time.perf_counter() - started
    # A job runs its own dry run after validate: a stage of its own in the wall time.
    timed_costs = {"validate": costs["validate"], "estimate": StageCost(), **costs}
    devices_out = {}
    for device in devices:
        seconds = wall_seconds(timed_costs, rates[device.type], timed)
        devices_out[device.type] = {
            "device": device_name(device),
            "total": round(sum(seconds.values()), 1),
            "stages": seconds,
            "seconds_per_example": {k: float(f"{v:.3g}") for k, v in rates[device.type].items()},
        }
    return {
        "work": {**totals, "stages": stages},
        "models": {
            "teacher": {"flops_per_example": teacher_flops},
            "student": {"flops_per_example": student_flops},
        },
        "wall_seconds": devices_out,
        "dry_run_seconds": round(timed.validate + timed.dry_run, 2),
    }


def estimate_spec(spec: dict[str, Any], tenant: str, settings: Settings) -> dict[str, Any]:
    """The estimate of a resolved spec (app.jobs.spec.resolve_spec) for `tenant`, on every device
    kind this worker has. Raises SpecError as validate would for a job."""
    from worker.stages.validate import Validate

    control = DryRunControl(settings)
    with tempfile.TemporaryDirectory(prefix="estimate-", dir=_scratch(settings)) as folder:
        job = JobContext(
            job_id="estimate",
            spec=spec,
            settings=settings,
            control=control,
            store=make_store(settings.artifact_url, settings.s3_endpoint_url),
            task=task_for(spec),
            device=torch.device("cpu"),
            workdir=Path(folder),
            tenant=tenant,
        )
        started = time.perf_counter()
        Validate().run(job)
        result = estimate(job, device_kinds(), Timed(validate=time.perf_counter() - started))
    result["events"] = control.events
    return result


def answer(spec: dict[str, Any], tenant: str, settings: Settings) -> dict[str, Any]:
    """What a worker answers: the estimate, or {"error": {code, message, param}} for a spec
    validate refuses."""
    try:
        return estimate_spec(spec, tenant, settings)
    except SpecError as exc:
        return {"error": {"code": "invalid_spec", "message": exc.message, "param": exc.param}}


def _scratch(settings: Settings) -> Path:
    path = settings.work_root / "estimates"
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    """`python -m worker.estimate`: a {"spec", "tenant"} request on stdin, the answer on
    stdout."""
    request = json.load(sys.stdin)
    settings = get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    sys.stdout.write(json.dumps(answer(request["spec"], request["tenant"], settings)))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (threads torch started)


if __name__ == "__main__":
    main()
