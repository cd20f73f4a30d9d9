"""The pipeline every job runs, in both modes:

validate -> pretrain_teacher -> soft_labels -> distill -> baseline -> evaluate -> export

Each stage leaves its output in the job's work folder (teacher / student / baseline weights,
soft labels in the store) and checkpoints every epoch, so a job restarted after a crash skips
finished stages and resumes the current one from its last complete epoch.
"""

import csv
import json
import logging
import math
import re
import resource
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from app import jobs
from app.catalog import SpecError
from app.db import session_scope
from app.housekeeping import remove_job_work
from app.models import Job, JobStatus
from app.settings import Settings, get_settings
from app.storage import Store, artifact_key, make_store
from worker import export, worksync
from worker.claiming import claim_job, hold_and_run
from worker.control import JobCancelled, JobControl, JobPaused, LeaseLost
from worker.data import DatasetMismatch, PreparedData, prepare
from worker.failures import infrastructure_message, is_infrastructure_error
from worker.kd import FeatureTaps, Method, Outputs, build_method
from worker.kd.schedules import TemperatureSchedule
from worker.models import InputMismatch, build_model, count_params
from worker.softlabels import SoftLabelStore, StoredLogits
from worker.teachers import TeacherContext, TeacherSource, build_teacher
from worker.train import LoopHooks, accuracy_and_loss, train

log = logging.getLogger(__name__)

STAGES = (
    "validate",
    "pretrain_teacher",
    "soft_labels",
    "distill",
    "baseline",
    "evaluate",
    "export",
)
EXPORT_FILES = {
    "safetensors": "student.safetensors",
    "onnx": "student.onnx",
    "torchscript": "student.ts",
}


# An absolute path in an exception message: /a/b, /a/b/c.txt (not a ratio like 3/4).
SERVER_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)*[\w.@+-]+")


def public_message(exc: BaseException) -> str:
    """What a job's error and events say about an unexpected exception: its type and message,
    with server paths masked (they mean nothing to the user and describe the host)."""
    return SERVER_PATH.sub("<path>", f"{type(exc).__name__}: {exc}")[:2000]


def run(job_id: str, settings: Settings | None = None) -> None:
    """Claim the job and run it to a final status. A job someone else holds is left alone."""
    settings = settings or get_settings()
    claimed = claim_job(job_id, settings)
    if claimed is not None:
        hold_and_run(*claimed, settings)


def run_claimed(job: Job, control: JobControl, settings: Settings) -> None:
    """Run a job this worker has claimed, and holds through `control`, to a final status."""
    pipeline = Pipeline(settings, job.id, job.spec, control)
    try:
        _run_to_final_status(pipeline, control)
    except LeaseLost:
        # While running, or while writing the final events and status: the job belongs to
        # the worker that took it over, which writes them.
        log.warning("lost the lease on %s; another worker has it", job.id)


def _run_to_final_status(pipeline: "Pipeline", control: JobControl) -> None:
    job_id = pipeline.job_id
    try:
        result = pipeline.run()
    except LeaseLost:
        raise
    except JobCancelled:
        control.finish(JobStatus.CANCELLED, progress=pipeline.progress())
    except JobPaused:
        # Checkpointed where it stopped; free this worker. A cancel that came meanwhile
        # (the job is cancelling now, not pausing) ends it instead.
        if not control.paused(pipeline.progress()):
            control.finish(JobStatus.CANCELLED, progress=pipeline.progress())
    except SpecError as exc:
        error = {"code": "invalid_spec", "message": exc.message, "param": exc.param}
        control.finish(JobStatus.FAILED, error={**error, "stage": pipeline.stage})
    except Exception as exc:
        if is_infrastructure_error(exc):
            _requeue(control, pipeline.stage, exc)
            return
        # The traceback and the server's paths go to the log; the user sees what failed.
        log.exception("job %s failed in %s", job_id, pipeline.stage)
        message = public_message(exc)
        control.event("error", message, {"stage": pipeline.stage})
        error = {"code": "stage_failed", "message": message}
        control.finish(JobStatus.FAILED, error={**error, "stage": pipeline.stage})
    else:
        # Peak resident memory of this worker process (what a memory budget has to hold).
        peak_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        control.event("info", f"worker peak memory {peak_mib} MiB", {"peak_rss_mib": peak_mib})
        control.finish(JobStatus.SUCCEEDED, result=result, progress=pipeline.progress(done=True))


def _requeue(control: JobControl, stage: str, exc: BaseException) -> None:
    """Not the job's fault: another attempt (after the database or disk recovers, or on
    another worker) resumes it from its checkpoints; the last attempt fails it."""
    log.warning("job %s hit an infrastructure error in %s", control.job_id, stage, exc_info=exc)
    reason = f"{infrastructure_message(exc)} in stage {stage}"
    try:
        status = control.requeue(reason)
    except Exception:
        # Still unreachable: the lease expires and the reaper requeues the job (or fails it
        # after its last attempt), so it is not lost either way.
        log.exception("could not requeue %s; its lease will expire", control.job_id)
        return
    log.info("job %s %s: %s", control.job_id, status, reason)


class Pipeline:
    def __init__(self, settings: Settings, job_id: str, spec: dict[str, Any], control: JobControl):
        self.settings = settings
        self.job_id = job_id
        self.spec = spec
        self.control = control
        self.workdir = settings.work_root / "jobs" / job_id
        self.store: Store = make_store(settings.artifact_url, settings.s3_endpoint_url)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.stage = "validate"
        self.seed = spec["seed"]
        self._data: PreparedData | None = None
        # Progress bookkeeping: work is counted in example passes.
        self.work_total = 1.0
        self.work_before_stage: dict[str, float] = {}
        self.work_of_stage: dict[str, float] = {}
        self.stage_fraction = 0.0
        self.epoch_info: tuple[int, int] | None = None
        # ETA = time since the origin x remaining / progress since the origin. The origin moves
        # past work this attempt did not do (stages and epochs done by an earlier attempt).
        self.eta_origin: tuple[float, float] | None = None

    # --- orchestration ------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run every stage; returns the report. Once the job ends here for good, its work files
        go: all of them when it succeeded or was cancelled; after a failure, those in a remote
        store, while its folder on this host stays for an operator to look at until gc removes
        it (DISTILLERY_FAILED_WORK_RETENTION_HOURS). None go when the lease was lost, the job
        was paused, or an infrastructure error will requeue it: another attempt carries on
        from them."""
        try:
            report = self._run_stages()
        except (LeaseLost, JobPaused):
            raise
        except JobCancelled:
            self._remove_work()
            raise
        except Exception as exc:
            if not is_infrastructure_error(exc):
                self._clear_remote_work()
            raise
        self._remove_work()
        return report

    def _remove_work(self) -> None:
        """Remove the work files, here and in a remote store, while this worker still holds the
        job: renewing the lease keeps any other worker from taking the job (and the work
        folder, which workers on one host share) while they go."""
        try:
            held = self.control.write(
                lambda session: jobs.renew_lease(
                    session, self.job_id, self.control.owner, self.settings.lease_seconds
                )
            )
            if held is not None:
                remove_job_work(self.settings, self.store, self.job_id)
        except Exception:
            log.warning("could not remove the work files of %s", self.job_id, exc_info=True)

    def _clear_remote_work(self) -> None:
        try:
            worksync.clear(self.store, self.job_id)
        except Exception:
            log.warning(
                "could not remove the work files of %s from the store", self.job_id, exc_info=True
            )

    def _run_stages(self) -> dict[str, Any]:
        self.enter("validate")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Work files an attempt on another host left in a remote store (no-op for a local one).
        worksync.pull(self.store, self.job_id, self.workdir)
        data, teacher, student = self.validate()
        self.data = data
        self.plan_work(data)
        self.enter("pretrain_teacher")
        teacher.pretrain(self)
        self.enter("soft_labels")
        teacher_logits = self.soft_labels(data, teacher)
        self.enter("distill")
        self.distill(data, student, teacher, teacher_logits)
        baseline = None
        if self.spec["baseline"]:
            self.enter("baseline")
            baseline = self.train_baseline(data)
        self.enter("evaluate")
        report = self.evaluate(data, teacher, student, baseline)
        self.enter("export")
        self.export(data, teacher, student, report)
        return report

    def enter(self, stage: str) -> None:
        self.stage, self.stage_fraction, self.epoch_info = stage, 0.0, None
        self.control.stage(stage, self.progress())

    def progress(self, done: bool = False) -> dict[str, Any]:
        if done:
            return {"stage": None, "epoch": None, "epochs": None, "fraction": 1.0, "eta_seconds": 0}
        before = self.work_before_stage.get(self.stage, 0.0)
        fraction = before + self.work_of_stage.get(self.stage, 0.0) * self.stage_fraction
        fraction = min(fraction / self.work_total, 1.0)
        if self.eta_origin is None:
            self.eta_origin = (time.monotonic(), fraction)
        eta = None
        origin_time, origin_fraction = self.eta_origin
        gained = fraction - origin_fraction
        if gained > 0.005:
            eta = round((time.monotonic() - origin_time) * (1 - fraction) / gained, 1)
        epoch, epochs = self.epoch_info or (None, None)
        return {
            "stage": self.stage,
            "epoch": epoch,
            "epochs": epochs,
            "fraction": round(fraction, 4),
            "eta_seconds": eta,
        }

    def plan_work(self, data: PreparedData) -> None:
        distill = self.spec["distill"]
        n_distill = len(data.distill)
        teacher = self.spec["teacher"]
        distill_passes = distill["epochs"] * math.ceil(n_distill / distill["batch_size"])
        distill_passes *= distill["batch_size"]
        work = {
            "validate": 0.0,
            "pretrain_teacher": (
                teacher["train"]["epochs"] * len(data.train) if teacher["source"] == "train" else 0
            ),
            "soft_labels": n_distill / 3,
            "distill": distill_passes,
            "baseline": distill_passes if self.spec["baseline"] else 0.0,
            "evaluate": n_distill / 3,
            "export": n_distill / 3,
        }
        total = 0.0
        for stage in STAGES:
            self.work_before_stage[stage] = total
            total += work[stage]
        self.work_of_stage, self.work_total = work, max(total, 1.0)
        self.eta_origin = None

    def hooks(self) -> LoopHooks:
        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            epochs = self.epoch_info[1] if self.epoch_info else epoch
            self.epoch_info = (epoch, epochs)
            self.stage_fraction = epoch / epochs
            self.control.epoch(self.stage, epoch, values, self.progress())

        def on_start(epochs_done: int) -> None:
            if epochs_done:
                epochs = self.epoch_info[1] if self.epoch_info else epochs_done
                self.stage_fraction = epochs_done / epochs
                self.control.event("info", f"{self.stage}: resuming after epoch {epochs_done}")
                self.eta_origin = None

        return LoopHooks(
            check=self.control.check,
            on_epoch=on_epoch,
            check_every=self.settings.cancel_check_steps,
            on_start=on_start,
            on_checkpoint=self._push,
        )

    def start_epochs(self, epochs: int) -> None:
        self.epoch_info = (0, epochs)

    # --- stages -------------------------------------------------------------------------------

    def _tenant(self) -> str:
        """The job's tenant: the only one whose uploaded files the job may read."""
        with session_scope(self.settings.database_url) as session:
            return jobs.get_job(session, self.job_id).tenant

    def validate(self) -> tuple[PreparedData, TeacherSource, nn.Module]:
        tenant = self._tenant()
        try:
            data = prepare(self.spec["dataset"], self.seed, self.settings, tenant)
        except DatasetMismatch as exc:
            raise SpecError(exc.param, str(exc)) from None
        teacher = build_teacher(
            TeacherContext(
                spec=self.spec["teacher"],
                data=data,
                settings=self.settings,
                device=self.device,
                workdir=self.workdir,
                seed=self.seed,
                dataset_name=self.spec["dataset"]["name"],
                tenant=tenant,
            )
        )
        teacher.validate()
        student = self._build_student(data)
        method = build_method(self.spec["distill"])
        if teacher.module is None and self._online(method):
            raise SpecError(
                "distill.soft_labels" if not method.teacher_layers() else "distill.method",
                f"a teacher from {teacher.name!r} has no PyTorch model to run online",
            )
        t_params = count_params(teacher.module) if teacher.module is not None else None
        s_params = count_params(student)
        self.control.event(
            "info",
            f"{len(data.train)} train, {len(data.val)} val, {len(data.test)} test, "
            f"{len(data.transfer)} transfer examples "
            f"({'in memory' if data.in_memory else 'read from disk'}); "
            f"teacher from {teacher.name}"
            + (f" ({t_params} params)" if t_params is not None else "")
            + f", student {s_params} params; device {self.device}",
            {
                "train": len(data.train),
                "val": len(data.val),
                "test": len(data.test),
                "transfer": len(data.transfer),
                "in_memory": data.in_memory,
                "teacher_source": teacher.name,
                "teacher_params": t_params,
                "student_params": s_params,
                "device": str(self.device),
            },
        )
        if data.transfer_dropped:
            self.control.event(
                "warning",
                f"dropped {data.transfer_dropped} transfer examples that are also validation "
                "or test examples",
                {"transfer_dropped": data.transfer_dropped},
            )
        if t_params is not None and s_params >= t_params:
            self.control.event("warning", "the student is not smaller than the teacher")
        return data, teacher, student

    def _build_student(self, data: PreparedData) -> nn.Module:
        part = self.spec["student"]
        # Seeded per model: the baseline starts from exactly the student's initial weights.
        torch.manual_seed(self.seed)
        try:
            model = build_model(
                part["arch"],
                part["params"],
                data.input_shape,
                data.num_classes,
                data.mean,
                data.std,
            )
        except InputMismatch as exc:
            raise SpecError(
                "student.arch", f"{exc} (dataset {self.spec['dataset']['name']})"
            ) from None
        return model.to(self.device)

    # --- what teacher sources use (worker.teachers.StageRunner) -------------------------------

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.control.event(kind, message, data)

    @property
    def data(self) -> PreparedData:
        assert self._data is not None, "validate runs first"
        return self._data

    @data.setter
    def data(self, data: PreparedData) -> None:
        self._data = data

    def train_with_labels(self, model: nn.Module, settings: dict[str, Any], name: str) -> None:
        self._train_with_labels(model, self.data, settings, name, None)

    def finished(self, model: nn.Module, name: str) -> bool:
        return self._finished(model, name)

    def _push(self, path: Path) -> None:
        worksync.push(self.store, self.job_id, path)

    def save_output(self, model: nn.Module, name: str) -> Path:
        """Write a stage's weights (whole or not at all) and copy them to a remote store."""
        path = self.workdir / f"{name}.safetensors"
        export.save_safetensors(model, path)
        self._push(path)
        return path

    def _validator(self, data: PreparedData) -> Any:
        def validate(model: nn.Module) -> dict[str, float]:
            accuracy, loss = accuracy_and_loss(model, data.val, data.y_val)
            return {"val_loss": loss, "val_accuracy": accuracy}

        return validate

    def _train_with_labels(
        self, model: nn.Module, data: PreparedData, settings: dict, name: str, steps: int | None
    ) -> None:
        x, y = data.train, data.y_train.to(self.device)

        def batch_loss(m: nn.Module, index: torch.Tensor, _t: float | None) -> torch.Tensor:
            return nn.functional.cross_entropy(m(x.batch(index, self.device)), y[index])

        self.start_epochs(settings["epochs"])
        try:
            train(
                model,
                settings=settings,
                num_examples=len(x),
                batch_loss=batch_loss,
                validate=self._validator(data),
                checkpoint_path=self.workdir / f"{name}.ckpt",
                hooks=self.hooks(),
                seed=self.seed,
                steps_per_epoch=steps,
            )
        finally:
            x.release()

    def _finished(self, model: nn.Module, name: str) -> bool:
        """Load a stage's output if an earlier attempt finished it."""
        path = self.workdir / f"{name}.safetensors"
        if not path.exists():
            return False
        model.load_state_dict(load_file(str(path), device=str(self.device)))
        self.control.event("info", f"{self.stage}: reusing {name} weights from an earlier attempt")
        self.eta_origin = None
        return True

    def _online(self, method: Method) -> bool:
        """Whether the teacher runs at every distillation step: asked for, or the method reads
        the teacher's layers (the store keeps logits only)."""
        return self.spec["distill"]["soft_labels"] == "online" or bool(method.teacher_layers())

    def soft_labels(self, data: PreparedData, teacher: TeacherSource) -> StoredLogits | None:
        method = build_method(self.spec["distill"])
        if self._online(method):
            name = self.spec["distill"]["method"]
            why = f" ({name} reads its layers)" if method.teacher_layers() else ""
            self.control.event("info", f"soft labels: the teacher runs online at every step{why}")
            return None
        # No stochastic augmentation yet, so "auto" means the store.
        store = SoftLabelStore.for_settings(self.settings)
        key = store.key(teacher.sha256(), data.fingerprint(), teacher.preprocessing)
        shape = (len(data.distill), data.num_classes)
        array, reused = store.get_or_write(key, shape, teacher.distill_logits)
        self.control.event(
            "info",
            f"soft labels {'reused from' if reused else 'written to'} the store "
            f"({array.shape[0]} x {array.shape[1]}, {array.dtype})",
            {"key": key, "reused": reused, "teacher_source": teacher.name},
        )
        return StoredLogits(array, self.device)

    def distill(
        self,
        data: PreparedData,
        student: nn.Module,
        teacher: TeacherSource,
        stored: StoredLogits | None,
    ) -> None:
        if self._finished(student, "student"):
            return
        settings = self.spec["distill"]
        method = build_method(settings)
        x, y = data.distill, data.y_distill.to(self.device)
        module = teacher.module
        if module is not None:
            module.eval()
        # The taps (forward hooks) exist only for this stage: the student that is evaluated
        # and exported afterwards runs without them.
        with (
            FeatureTaps(student, method.student_layers()) as student_taps,
            FeatureTaps(module, method.teacher_layers()) as teacher_taps,
        ):

            def teacher_outputs(index: torch.Tensor, inputs: torch.Tensor) -> Outputs:
                if stored is not None:
                    return Outputs(stored(index))
                assert module is not None  # validate refuses online without a PyTorch teacher
                with torch.no_grad():
                    logits = module(inputs)
                return Outputs(logits, teacher_taps.take())

            def batch_loss(m: nn.Module, index: torch.Tensor, t: float | None) -> torch.Tensor:
                inputs = x.batch(index, self.device)
                logits = m(inputs)
                return method.loss(
                    Outputs(logits, student_taps.take()),
                    teacher_outputs(index, inputs),
                    y[index],
                    temperature=t,  # type: ignore[arg-type]  # distillation always has a T
                )

            model = self._with_learnable_parts(student, method, x, teacher_outputs, student_taps)
            schedule = TemperatureSchedule(
                settings["temperature_schedule"], settings["temperature"], settings["epochs"]
            )
            self.start_epochs(settings["epochs"])
            try:
                train(
                    model,
                    settings=settings,
                    num_examples=len(x),
                    batch_loss=batch_loss,
                    validate=self._validator(data),
                    checkpoint_path=self.workdir / "student.ckpt",
                    hooks=self.hooks(),
                    seed=self.seed,
                    temperature=schedule,
                )
            finally:
                x.release()
        self.save_output(student, "student")

    def _with_learnable_parts(
        self,
        student: nn.Module,
        method: Method,
        x: Any,
        teacher_outputs: Any,
        student_taps: FeatureTaps,
    ) -> nn.Module:
        """The module distillation trains: the student, plus the method's learnable parts
        (built from the shapes of one batch's features) when it has any, so that they share
        the optimiser and the checkpoint."""
        if not method.student_layers():
            return student
        probe = torch.arange(min(2, len(x)))
        inputs = x.batch(probe, self.device)
        student.eval()
        with torch.no_grad():
            student(inputs)
            features = student_taps.take()
            teacher = teacher_outputs(probe, inputs)
        try:
            method.build(features, teacher.features)
        except ValueError as exc:
            raise SpecError("distill.method_params", str(exc)) from None
        if not any(True for _ in method.parameters()):
            return student
        return StudentWithMethod(student, method).to(self.device)

    def train_baseline(self, data: PreparedData) -> nn.Module:
        """The same student from scratch on hard labels: same seed, optimiser settings and
        number of optimiser steps as distillation (epochs are stretched to match)."""
        settings = self.spec["distill"]
        baseline = self._build_student(data)  # the student's initial weights
        if not self._finished(baseline, "baseline"):
            steps = math.ceil(len(data.distill) / settings["batch_size"])
            self._train_with_labels(baseline, data, settings, "baseline", steps)
            self.save_output(baseline, "baseline")
        return baseline

    def evaluate(
        self,
        data: PreparedData,
        teacher: TeacherSource,
        student: nn.Module,
        baseline: nn.Module | None,
    ) -> dict[str, Any]:
        example = data.test.head(1)
        report: dict[str, Any] = {"teacher": {**teacher.describe(), **teacher.evaluate()}}
        for name, model in (("student", student), ("baseline", baseline)):
            if model is None:
                continue
            accuracy, loss = accuracy_and_loss(model, data.test, data.y_test)
            report[name] = {
                "arch": self.spec["student"]["arch"],
                "params": count_params(model),
                "bytes": (self.workdir / f"{name}.safetensors").stat().st_size,
                "test_accuracy": round(accuracy, 4),
                "test_loss": round(loss, 4),
                "latency_ms_cpu": round(export.cpu_latency_ms(model, example), 4),
            }
            model.to(self.device)
        t, s = report["teacher"], report["student"]
        report["compression"] = {
            "param_ratio": _ratio(t["params"], s["params"], 2),
            "size_ratio": _ratio(t["bytes"], s["bytes"], 2),
            "latency_speedup_cpu": _ratio(t["latency_ms_cpu"], s["latency_ms_cpu"], 2),
            "accuracy_retention": (
                round(s["test_accuracy"] / max(t["test_accuracy"], 1e-9), 4)
                if t["test_accuracy"] is not None
                else None
            ),
            "kd_gain": (
                round(s["test_accuracy"] - report["baseline"]["test_accuracy"], 4)
                if "baseline" in report
                else None
            ),
        }
        report["dataset"] = {
            "name": self.spec["dataset"]["name"],
            "test_split": data.test_split,
            "class_names": data.class_names,
            "train": len(data.train),
            "val": len(data.val),
            "test": len(data.test),
            "transfer": len(data.transfer),
        }
        return report

    def export(
        self,
        data: PreparedData,
        teacher: TeacherSource,
        student: nn.Module,
        report: dict[str, Any],
    ) -> None:
        out = self.workdir / "export"
        out.mkdir(exist_ok=True)
        student = student.cpu().eval()
        example = data.test.head(2)
        files: dict[str, tuple[str, Path]] = {}
        for fmt in self.spec["export"]:
            path = out / EXPORT_FILES[fmt]
            if fmt == "safetensors":
                export.save_safetensors(student, path)
            elif fmt == "onnx":
                export.export_onnx(student, example, path)
                diff = export.onnx_max_abs_diff(student, path, data.test.head(256))
                report.setdefault("checks", {})["onnx_max_abs_diff"] = diff
                if diff > 1e-3:
                    self.control.event("warning", f"ONNX logits differ from PyTorch by {diff:.2e}")
            else:
                export.export_torchscript(student, example, path)
            files[path.name] = (fmt, path)

        metrics_path = out / "metrics.csv"
        self._write_metrics_csv(metrics_path)
        files["metrics.csv"] = ("csv", metrics_path)
        report_path = out / "report.json"
        report_path.write_text(json.dumps(report, indent=2))
        files["report.json"] = ("json", report_path)

        manifest = {
            "job_id": self.job_id,
            "arch": self.spec["student"]["arch"],
            "arch_params": self.spec["student"]["params"],
            "params": report["student"]["params"],
            "input": {
                "name": export.INPUT_NAME,
                "shape": [None, *data.input_shape],
                "dtype": "float32",
            },
            "output": {"name": export.OUTPUT_NAME, "shape": [None, data.num_classes]},
            "preprocessing": {
                "baked_into_graph": True,
                "normalization": {"mean": data.mean.tolist(), "std": data.std.tolist()},
                "note": "pass raw inputs in the dataset's own format, as float32 (images: pixel "
                "values 0..255); the graph normalises them",
            },
            "class_names": data.class_names,
            "dataset": {
                "name": self.spec["dataset"]["name"],
                "options": self.spec["dataset"]["options"],
                "test_split": data.test_split,
                # The dtype the dataset's inputs come in (uint8 images: cast to float32).
                "dtype": data.raw_dtype,
            },
            "teacher": teacher.describe(),
            "metrics": {k: report[k] for k in ("teacher", "student", "baseline") if k in report},
            "compression": report["compression"],
            "files": {},
        }
        store = self.store
        for name, (fmt, path) in files.items():
            key = artifact_key(self.job_id, name)
            size, digest = store.put_file(key, path)
            self.control.artifact(name=name, fmt=fmt, size=size, sha256=digest, key=key)
            manifest["files"][name] = {"sha256": digest, "bytes": size, "format": fmt}
        manifest_path = out / "manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=2))
        key = artifact_key(self.job_id, "manifest.json")
        size, digest = store.put_file(key, manifest_path)
        self.control.artifact(name="manifest.json", fmt="json", size=size, sha256=digest, key=key)

    def _write_metrics_csv(self, path: Path) -> None:
        with session_scope(self.settings.database_url) as session:
            rows = [(m.stage, m.epoch, m.values) for m in jobs.list_metrics(session, self.job_id)]
        columns = sorted({k for _, _, values in rows for k in values})
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["stage", "epoch", *columns])
            for stage, epoch, values in rows:
                writer.writerow([stage, epoch, *(values.get(c, "") for c in columns)])


class StudentWithMethod(nn.Module):
    """The student and a method's learnable parts (e.g. FitNets regressors), trained and
    checkpointed together; its forward is the student's."""

    def __init__(self, student: nn.Module, method: Method) -> None:
        super().__init__()
        self.student = student
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def _ratio(a: float | None, b: float | None, digits: int) -> float | None:
    """a / b rounded; None when either is unknown (e.g. a teacher given as logits)."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)
