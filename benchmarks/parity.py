"""Parity: does the service's distillation pay as much as a plain PyTorch loop on the same spec?

For each seed, the spec runs through the service's pipeline (in this process, as
benchmarks/inprocess.py runs jobs) and through benchmarks/reference_loop.py, a plain loop
written from the spec's meaning alone; the table gives teacher / student / baseline per seed,
then means and standard errors, and whether the service's mean student score and mean gain are
within one standard error of the reference's (or better).

    python benchmarks/parity.py mnist1d --seeds 5 6 7 8 9
    python benchmarks/parity.py fashion-mnist      # needs: apt-get install dataset-fashion-mnist
    python benchmarks/parity.py pystdlib-gpt
    python benchmarks/parity.py mnist1d --side service --out a.json   # one side, in parallel
    python benchmarks/parity.py mnist1d --side reference --out b.json # with the other
    python benchmarks/parity.py mnist1d --table a.json b.json         # then their table
    python benchmarks/parity.py mnist1d --side service --precision mixed  # bf16 autocast

The service runs as a user runs it: `distillery serve` on SQLite in a temporary folder, the
spec's files uploaded and each seed's job submitted with the SDK.

Results go to benchmarks/parity-<spec>.json (with --out, elsewhere).
"""

import argparse
import contextlib
import copy
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import reference_loop
from benchmarks.services import embedded_service
from distillery import Client

HERE = Path(__file__).resolve().parent

# The naive MNIST-1D spec: nobody tuned it.
MNIST1D: dict[str, Any] = {
    "name": "parity-mnist1d",
    "dataset": {
        "name": "mnist1d",
        "options": {"num_samples": 5000},
        "val_fraction": 0.1,
        "transfer": {"name": "mnist1d", "options": {"seed": 7, "num_samples": 25000}},
    },
    "teacher": {
        "arch": "cnn1d",
        "params": {"channels": 64},
        "train": {"epochs": 150, "batch_size": 100, "optimizer": "adam", "lr": 0.003},
    },
    "student": {"arch": "cnn1d", "params": {"channels": 8}},
    "distill": {
        "method": "kd",
        "temperature": 2.0,
        "kd_weight": 1.0,
        "ce_weight": 0.0,
        "epochs": 30,
        "batch_size": 100,
        "optimizer": "adam",
        "lr": 0.003,
    },
    "baseline": True,
    "export": ["safetensors"],
}

# examples/uploads/fashion-mnist-cnn.json: Debian's Fashion-MNIST, 5,000 labelled training
# images (stratified), 15,000 of the others as the transfer set, the 10,000 test images.
FASHION: dict[str, Any] = {
    "name": "parity-fashion-mnist",
    "dataset": {"name": "file:FASHION", "val_fraction": 0.1, "transfer": {"name": "file:TRANSFER"}},
    "teacher": {
        "arch": "cnn2d",
        "params": {"channels": [64, 128]},
        "train": {"epochs": 10, "batch_size": 128, "lr": 0.003, "lr_schedule": "cosine"},
    },
    "student": {"arch": "mlp", "params": {"hidden": [64]}},
    "distill": {
        "method": "kd",
        "temperature": 4.0,
        "kd_weight": 0.9,
        "ce_weight": 0.1,
        "epochs": 5,
        "batch_size": 128,
        "lr": 0.003,
        "lr_schedule": "cosine",
    },
    "baseline": True,
    "export": ["safetensors"],
}

# examples/pystdlib-gpt.json on a fifth of its corpus, with the epochs a 2-core CPU affords.
PYSTDLIB: dict[str, Any] = {
    "name": "parity-pystdlib-gpt",
    "task": "language_model",
    "dataset": {
        "name": "pystdlib",
        "options": {"context": 128, "max_bytes": 200_000},
        "val_fraction": 0.05,
    },
    "teacher": {
        "arch": "gpt",
        "params": {"layers": 3, "heads": 4, "dim": 96, "context": 128},
        "train": {
            "epochs": 4,
            "batch_size": 64,
            "optimizer": "adamw",
            "lr": 0.003,
            "weight_decay": 0.01,
            "lr_schedule": "cosine",
        },
    },
    "student": {"arch": "gpt", "params": {"layers": 2, "heads": 2, "dim": 48, "context": 128}},
    "distill": {
        "method": "kd",
        "temperature": 1.0,
        "kd_weight": 0.9,
        "ce_weight": 0.1,
        "epochs": 3,
        "batch_size": 64,
        "optimizer": "adamw",
        "lr": 0.003,
        "weight_decay": 0.01,
        "lr_schedule": "cosine",
    },
    "baseline": True,
    "export": ["safetensors"],
}

SPECS: dict[str, dict[str, Any]] = {
    "mnist1d": MNIST1D,
    "fashion-mnist": FASHION,
    "pystdlib-gpt": PYSTDLIB,
}
# Each spec's score, and whether higher is better.
METRICS = {
    "classification": ("test_accuracy", True),
    "language_model": ("test_bits_per_byte", False),
}


def fashion_files(folder: Path) -> dict[str, Path]:
    """The dataset and transfer .npz files the Fashion-MNIST spec names (FASHION, TRANSFER)."""
    import numpy as np

    sys.path.insert(0, str(HERE.parent / "examples"))
    from fashion_mnist_to_npz import DEFAULT_SOURCE, build_with_transfer

    dataset, transfer = build_with_transfer(DEFAULT_SOURCE, 5000)
    paths = {"FASHION": folder / "fashion.npz", "TRANSFER": folder / "transfer.npz"}
    np.savez(paths["FASHION"], **dataset)
    np.savez(paths["TRANSFER"], x=transfer["x"][:15000])
    return paths


FILES = {"fashion-mnist": fashion_files}


def with_files(spec: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The spec with each `file:NAME` placeholder replaced by `file:<names[NAME]>`."""
    text = json.dumps(spec)
    for name, value in names.items():
        text = text.replace(f'"file:{name}"', json.dumps(f"file:{value}"))
    return dict(json.loads(text))


def uploaded(client: Client, paths: dict[str, Path]) -> dict[str, str]:
    """Each file uploaded as a dataset and checked; its id by placeholder name."""
    ids = {}
    for name, path in paths.items():
        file = client.files.wait(client.files.upload(path, "dataset").id, timeout=600)
        if file.status != "ready":
            raise SystemExit(f"{path}: {file.error}")
        ids[name] = file.id
    return ids


def service(client: Client, spec: dict[str, Any]) -> dict[str, float]:
    """Teacher / student / baseline test scores of the spec submitted as a job."""
    job = client.jobs.wait(client.jobs.create(spec).id, poll_interval=2)
    if job.status != "succeeded" or job.result is None:
        raise SystemExit(f"job {job.id} {job.status}: {job.error}")
    report = job.result
    key = METRICS[spec.get("task", "classification")][0]
    return {part: float(report[part][key]) for part in ("teacher", "student", "baseline")}


def summary(values: list[float]) -> dict[str, float]:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": mean, "sd": sd, "se": sd / math.sqrt(len(values))}


def gain(scores: dict[str, float], higher: bool) -> float:
    """What distillation added: the student's score over the baseline's, signed so that
    positive is better (accuracy up, bits per byte down)."""
    return (scores["student"] - scores["baseline"]) * (1 if higher else -1)


def statistics_of(
    rows: list[dict[str, Any]], higher: bool
) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for side in ("service", "reference"):
        parts = {p: summary([r[side][p] for r in rows]) for p in ("teacher", "student", "baseline")}
        parts["gain"] = summary([gain(r[side], higher) for r in rows])
        out[side] = parts
    return out


def table(rows: list[dict[str, Any]], higher: bool) -> str:
    """The markdown table: scores per seed and side, then means (standard errors). Gains of
    accuracy are in points (x100)."""
    scale = 100 if higher else 1
    digits = 1 if higher else 3
    lines = [
        "| seed | service teacher / student / baseline | gain | "
        "reference teacher / student / baseline | gain |",
        "|---|---|---|---|---|",
    ]

    def cell(r: dict[str, float]) -> str:
        return f"{r['teacher']:.3f} / {r['student']:.3f} / {r['baseline']:.3f}"

    def gain_cell(r: dict[str, float]) -> str:
        return f"{scale * gain(r, higher):+.{digits}f}"

    for row in rows:
        s, r = row["service"], row["reference"]
        lines.append(f"| {row['seed']} | {cell(s)} | {gain_cell(s)} | {cell(r)} | {gain_cell(r)} |")
    stats = statistics_of(rows, higher)

    def mean_cell(side: str) -> str:
        parts = [stats[side][p] for p in ("teacher", "student", "baseline")]
        return " / ".join(f"{p['mean']:.3f} ({p['se']:.3f})" for p in parts)

    def mean_gain(side: str) -> str:
        g = stats[side]["gain"]
        return f"{scale * g['mean']:+.{digits}f} ({scale * g['se']:.{digits}f})"

    lines.append(
        f"| mean (se) | {mean_cell('service')} | {mean_gain('service')} | "
        f"{mean_cell('reference')} | {mean_gain('reference')} |"
    )
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]], higher: bool) -> dict[str, bool]:
    """Whether the service's mean student score and mean gain are within one standard error
    of the reference's, or better."""
    stats = statistics_of(rows, higher)
    sign = 1 if higher else -1
    student_s, student_r = stats["service"]["student"], stats["reference"]["student"]
    gain_s, gain_r = stats["service"]["gain"], stats["reference"]["gain"]
    return {
        "student": sign * (student_s["mean"] - student_r["mean"]) >= -student_r["se"],
        "gain": gain_s["mean"] - gain_r["mean"] >= -gain_r["se"],
    }


def merged(paths: list[Path]) -> list[dict[str, Any]]:
    """The rows of results files (each side may come from its own run), merged by seed."""
    by_seed: dict[int, dict[str, Any]] = {}
    for path in paths:
        for row in json.loads(path.read_text())["rows"]:
            by_seed.setdefault(row["seed"], {}).update(row)
    return [r for _, r in sorted(by_seed.items()) if "service" in r and "reference" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", choices=sorted(SPECS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7, 8, 9])
    parser.add_argument("--side", choices=["both", "service", "reference"], default="both")
    parser.add_argument(
        "--precision",
        choices=["float32", "mixed"],
        default="float32",
        help="the service's spec precision (the reference is float32)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--table", type=Path, nargs="+", default=None, help="print the table of results files"
    )
    args = parser.parse_args()
    higher = METRICS[SPECS[args.spec].get("task", "classification")][1]
    if args.table:
        results = merged(args.table)
        print(table(results, higher))
        print("within one standard error (or better):", verdict(results, higher))
        return
    out = args.out or HERE / f"parity-{args.spec}.json"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        paths = FILES[args.spec](folder) if args.spec in FILES else {}
        client, ids = None, {}
        if args.side != "reference":
            client = stack.enter_context(embedded_service(folder))
            ids = uploaded(client, paths)
        rows: list[dict[str, Any]] = []
        for seed in args.seeds:
            spec = copy.deepcopy(SPECS[args.spec]) | {"seed": seed, "precision": args.precision}
            row: dict[str, Any] = {"seed": seed}
            for side in ("service", "reference"):
                if args.side not in ("both", side):
                    continue
                started = time.perf_counter()
                if side == "service":
                    assert client is not None
                    row[side] = service(client, with_files(spec, ids))
                else:
                    local = {name: str(path) for name, path in paths.items()}
                    row[side] = reference_loop.run(spec, local)
                row[f"{side}_seconds"] = round(time.perf_counter() - started, 1)
                print(seed, side, row[side], f"{row[f'{side}_seconds']} s", flush=True)
            rows.append(row)
            out.write_text(json.dumps({"spec": spec | {"seed": None}, "rows": rows}, indent=1))
    if args.side == "both":
        print(table(rows, higher))
        print("within one standard error (or better):", verdict(rows, higher))


if __name__ == "__main__":
    main()
