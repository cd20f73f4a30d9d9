"""Packaging a finished job: the report (teacher, student, baseline and, when asked, the
random-init baseline on the test split, the
compression they add up to, and the diagnosis: whether distillation helped and, if not, why),
the exported student files (and the compress stages' graphs), metrics.csv, the frontier's plot
(frontier.svg), report.json and the manifest that lists them with their sha256, all uploaded
as the job's artifacts."""

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from app import jobs
from app.db import session_scope
from app.store.base import artifact_key
from distillery.types.frontier import frontier_svg
from worker import diagnosis, export
from worker.causal_lm import folder
from worker.causal_lm.module import TokenLm
from worker.hf_classifier import TextClassifier
from worker.job_context import JobContext
from worker.models import count_params

EXPORT_FILES = {
    "safetensors": "student.safetensors",
    "onnx": "student.onnx",
    "torchscript": "student.ts",
    "hf": "student-hf.zip",
}
# How to run each file, as the manifest says.
HOW_TO_RUN = {
    "safetensors": "the student's weights: load them into the same architecture "
    "(safetensors.torch.load_file)",
    "onnx": "onnxruntime.InferenceSession(path).run(None, {input: ...})",
    "torchscript": "torch.jit.load(path)(input)",
    "hf": "unzip; AutoModelForCausalLM (a causal LM) or AutoModelForSequenceClassification "
    "(a classifier: config.json's architectures says) .from_pretrained(folder) and "
    "AutoTokenizer.from_pretrained(folder) (transformers, offline)",
}
# Exported logits may differ from PyTorch's by float rounding; more than this is worth a warning.
ONNX_TOLERANCE = 1e-3


def build_report(job: JobContext) -> dict[str, Any]:
    data, teacher, task = job.data, job.teacher, job.task
    example = task.example(data, 1)
    report: dict[str, Any] = {"teacher": {**teacher.describe(), **teacher.evaluate()}}
    for name in job.student_models:
        model: nn.Module | None = getattr(job, name)
        if model is None:
            continue
        measured = task.measure(model, data.test, data.y_test)
        report[name] = {
            **_student(job),
            "params": count_params(model),
            "bytes": (job.workdir / f"{name}.safetensors").stat().st_size,
            **{f"test_{k}": round(v, 4) for k, v in measured.items()},
            "latency_ms_cpu": round(export.cpu_latency_ms(model, example), 4),
        }
        model.to(job.device)
    t, s = report["teacher"], report["student"]
    report["compression"] = {
        "param_ratio": _ratio(t["params"], s["params"], 2),
        "size_ratio": _ratio(t["bytes"], s["bytes"], 2),
        "latency_speedup_cpu": _ratio(t["latency_ms_cpu"], s["latency_ms_cpu"], 2),
        **task.compare(t, s, report.get("baseline")),
    }
    if "random_init" in report:
        # The same gain against the architecture trained from random init.
        gain = task.compare(t, s, report["random_init"])["kd_gain"]
        report["compression"]["kd_gain_vs_random_init"] = gain
    samples = task.samples(
        {
            name: model
            for name, model in [
                ("teacher", teacher.module),
                ("student", job.student),
                ("baseline", job.baseline),
            ]
            if model is not None
        },
        data,
    )
    if samples:
        report["samples"] = samples
        for model in (teacher.module, job.student, job.baseline):
            if model is not None:
                model.to(job.device)
    if "tuning" in job.built:
        report["tuning"] = job.built["tuning"]
    report["diagnosis"] = diagnosis.diagnose(job, report)
    report["task"] = task.name
    report["dataset"] = {
        "name": job.spec["dataset"]["name"],
        "test_split": data.test_split,
        "class_names": data.class_names,
        "train": len(data.train),
        "val": len(data.val),
        "test": len(data.test),
        "transfer": len(data.transfer),
    }
    return report


def package(job: JobContext, report: dict[str, Any]) -> None:
    """Export the student in the spec's formats, write the report, metrics and manifest, and
    upload each as an artifact (the manifest last: it lists the others' sha256)."""
    data, spec = job.data, job.spec
    out = job.workdir / "export"
    out.mkdir(exist_ok=True)
    student = job.student.cpu().eval()
    task, signature = job.task, job.task.signature(data)
    names = (signature["input"]["name"], signature["output"]["name"])
    example = task.example(data, 2)
    files: dict[str, tuple[str, Path]] = {}
    for fmt in spec["export"]:
        path = out / EXPORT_FILES[fmt]
        if fmt == "safetensors":
            export.save_safetensors(student, path)
        elif fmt == "hf":
            folder.save_zip(student.hf, _tokenizer(job, student), path)
        elif fmt == "onnx":
            try:
                if "float_onnx" in job.built:  # the quantize stage exported this very student
                    shutil.copyfile(job.built["float_onnx"], path)
                else:
                    export.export_onnx(
                        student, example, path, names, dynamic_time=task.dynamic_time
                    )
            except Exception as exc:  # the exporter does not take every architecture
                if not isinstance(student, (TokenLm, TextClassifier)):
                    raise
                job.event(
                    "warning",
                    f"no ONNX file: the exporter cannot export this architecture ({exc})"[:2000],
                )
                report.setdefault("checks", {})["onnx_export"] = f"failed: {exc}"[:2000]
                continue
            diff = export.onnx_max_abs_diff(student, path, task.example(data, 256), names)
            report.setdefault("checks", {})["onnx_max_abs_diff"] = diff
            if diff > ONNX_TOLERANCE:
                job.event("warning", f"ONNX logits differ from PyTorch by {diff:.2e}")
        else:
            export.export_torchscript(student, example, path)
        files[path.name] = (fmt, path)

    # The compress stages' graphs (compress.prune, compress.quantize).
    for built in ("pruned_onnx", "int8_onnx"):
        graph = job.built.get(built)
        if graph is not None:
            files[graph.name] = ("onnx", graph)

    metrics_path = out / "metrics.csv"
    write_metrics_csv(job, metrics_path)
    files["metrics.csv"] = ("csv", metrics_path)
    svg = frontier_svg(report)  # the frontier stage's measurements, drawn
    if svg is not None:
        svg_path = out / "frontier.svg"
        svg_path.write_text(svg)
        files["frontier.svg"] = ("svg", svg_path)
    report_path = out / "report.json"
    report_path.write_text(json.dumps(report, indent=2))
    files["report.json"] = ("json", report_path)

    manifest = {
        "job_id": job.job_id,
        "task": spec.get("task", "classification"),
        **_student(job, manifest=True),
        "params": report["student"]["params"],
        # What the graph reads: the task's raw inputs, or a tokenizing model's ids.
        **(student.signature() if isinstance(student, export.Tokenizes) else signature),
        "preprocessing": (
            student.preprocessing()
            if isinstance(student, export.Tokenizes)
            else task.preprocessing(data)
        ),
        "class_names": data.class_names,
        "dataset": {
            "name": spec["dataset"]["name"],
            "options": spec["dataset"]["options"],
            "test_split": data.test_split,
            # The dtype the dataset's inputs come in (uint8 images: cast to float32).
            "dtype": data.raw_dtype,
        },
        "teacher": job.teacher.describe(),
        "metrics": {
            k: report[k] for k in ("teacher", *job.student_models, "pruned", "int8") if k in report
        },
        "compression": report["compression"],
        "files": {},
    }
    for name, (fmt, path) in files.items():
        size, digest = _upload(job, name, fmt, path)
        manifest["files"][name] = {
            "sha256": digest,
            "bytes": size,
            "format": fmt,
            "how_to_run": HOW_TO_RUN.get(fmt),
        }
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2))
    _upload(job, "manifest.json", "json", manifest_path)


def _tokenizer(job: JobContext, student: nn.Module) -> Any:
    """The tokenizer a Hugging Face student reads with: its own (a classifier's), or the
    causal-LM teacher's."""
    if isinstance(student, TextClassifier):
        return student.tokenizer
    lm = job.teacher.causal_lm
    assert isinstance(student, TokenLm) and lm is not None  # the spec's source says
    return lm.tokenizer


def _student(job: JobContext, manifest: bool = False) -> dict[str, Any]:
    """What the student is: a zoo arch (`arch`, and `params` as the manifest's
    `arch_params`), or what its source made (`student_source` and its description)."""
    described = job.student_source.describe()
    if described["source"] == "zoo":
        if manifest:
            return {"arch": described["arch"], "arch_params": described["params"]}
        return {"arch": described["arch"]}
    return {"student_source": described}


def _upload(job: JobContext, name: str, fmt: str, path: Path) -> tuple[int, str]:
    key = artifact_key(job.job_id, name)
    job.control.ensure_held()  # a worker that lost the job writes nothing under its prefix
    size, digest = job.store.put_file(key, path)
    job.control.artifact(name=name, fmt=fmt, size=size, sha256=digest, key=key)
    return size, digest


def write_metrics_csv(job: JobContext, path: Path) -> None:
    with session_scope(job.settings.database_url) as session:
        rows = [(m.stage, m.epoch, m.values) for m in jobs.list_metrics(session, job.job_id)]
    columns = sorted({k for _, _, values in rows for k in values})
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stage", "epoch", *columns])
        for stage, epoch, values in rows:
            writer.writerow([stage, epoch, *(values.get(c, "") for c in columns)])


def _ratio(a: float | None, b: float | None, digits: int) -> float | None:
    """a / b rounded; None when either is unknown (e.g. a teacher given as logits)."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)
