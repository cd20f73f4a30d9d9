"""Distill-stage throughput vs a bare PyTorch loop training the student alone (DESIGN §9).

Side by side in one process: a bare loop (the student arch, CIFAR-100-shaped inputs in one
float32 tensor, Adam, cross-entropy, a fresh permutation per epoch: nothing but the model's
step) and real jobs run in-process through the pipeline (SQLite, local store), whose distill
stage records samples/s per epoch (the epoch's training steps, validation and checkpoint
excluded, as for the bare loop):
- stored: soft labels read from the store (no augmentation);
- replayed: `dataset.augment` image (crop + flip), the teacher's labels of every epoch's views
  stored, and the student replaying those views.
Rounds alternate bare and job so both see the same machine; the table holds each run's median
epoch. Targets: stored >= 0.90 x bare, replayed >= 0.80 x bare.

    .venv/bin/python benchmarks/distill_throughput.py [--examples 2560] [--epochs 3] [--rounds 2]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.settings import Settings
from benchmarks.inprocess import run_job, temporary_settings
from worker.allocator import tune_allocator
from worker.models import build_model
from worker.precision import plan_precision

SHAPE = (3, 32, 32)
CLASSES = 100


def job_spec(args: argparse.Namespace, augment: bool) -> dict[str, Any]:
    dataset: dict[str, Any] = {
        "name": "synthetic",
        "options": {"shape": list(SHAPE), "num_classes": CLASSES, "num_samples": args.examples},
        "val_fraction": 0.05,
    }
    if augment:
        dataset["augment"] = {"kind": "image", "crop_padding": 4, "flip": True}
    return {
        "dataset": dataset,
        "teacher": {
            "arch": "resnet_cifar",
            "params": {"depth": args.teacher_depth},
            "train": {"epochs": 1, "batch_size": args.batch_size},
        },
        "student": {"arch": "resnet_cifar", "params": {"depth": args.student_depth}},
        "distill": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "soft_labels": "stored",
        },
        "baseline": False,
        "export": ["safetensors"],
        "precision": args.precision,
    }


def distill_rates(settings: Settings, spec: dict[str, Any]) -> list[float]:
    """The distill stage's samples/s, epoch by epoch."""
    _, metrics = run_job(settings, spec)
    return [m.values["samples_per_second"] for m in metrics if m.stage == "distill"]


def bare_loop(args: argparse.Namespace, train_examples: int) -> list[float]:
    """Samples/s of each epoch of the plainest loop training the same student, with the
    device used as the pipeline uses it (on CUDA: data resident on the GPU, the same mixed
    precision and memory format), so the ratio is the pipeline's own overhead."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    plan = plan_precision(Settings(), device, SHAPE, args.precision)
    torch.manual_seed(0)
    model = build_model("resnet_cifar", {"depth": args.student_depth}, SHAPE, CLASSES).to(device)
    step_model = plan.prepare(model)
    x = plan.inputs(torch.randn(train_examples, *SHAPE, device=device))
    y = torch.randint(0, CLASSES, (train_examples,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    scaler = plan.scaler()
    rates = []
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(train_examples, device=device)
        started = time.perf_counter()
        for start in range(0, train_examples, args.batch_size):
            index = order[start : start + args.batch_size]
            with plan.forward():
                loss = nn.functional.cross_entropy(step_model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        loss.item()  # wait for the device
        rates.append(train_examples / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2560)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--student-depth", type=int, default=20)
    parser.add_argument("--teacher-depth", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--precision",
        choices=["float32", "mixed"],
        default="float32",
        help="the job spec's precision, and the bare loop's (gpu.sh: mixed)",
    )
    args = parser.parse_args()
    # As the jobs' worker does (lifecycle), before the first bare round too.
    tune_allocator(Settings())

    runs: dict[str, list[float]] = {"bare": [], "stored": [], "replayed": []}
    with temporary_settings() as settings:
        # Synthetic keeps 80% for train and val; val_fraction 0.05 of that is held out.
        train_examples = round(args.examples * 0.8) - max(1, round(args.examples * 0.8 * 0.05))
        for round_ in range(args.rounds):
            for name in ("bare", "stored", "bare", "replayed"):
                if name == "bare":
                    rates = bare_loop(args, train_examples)
                else:
                    rates = distill_rates(settings, job_spec(args, augment=name == "replayed"))
                # The first epoch warms up allocators and caches: the rest are the measure.
                runs[name].append(statistics.median(rates[1:] or rates))
                print(f"round {round_ + 1} {name}: {runs[name][-1]:.1f} samples/s", flush=True)

    bare = statistics.median(runs["bare"])
    rows = []
    for name, target in (("bare", None), ("stored", 0.90), ("replayed", 0.80)):
        value = statistics.median(runs[name])
        rows.append(
            {
                "run": name,
                "samples_per_second": round(value, 1),
                "ratio": round(value / bare, 3),
                "target": target,
            }
        )
    print(
        f"\nresnet_cifar {args.student_depth} student, batch {args.batch_size}, "
        f"{train_examples} examples x {args.epochs} epochs, {torch.get_num_threads()} threads"
    )
    print(f"{'run':<10} {'samples/s':>10} {'x bare':>8} {'target':>8}")
    for row in rows:
        target = f">= {row['target']:.2f}" if row["target"] else ""
        print(
            f"{row['run']:<10} {row['samples_per_second']:>10.1f} {row['ratio']:>8.3f} {target:>8}"
        )
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "table": rows}, indent=2))


if __name__ == "__main__":
    main()
