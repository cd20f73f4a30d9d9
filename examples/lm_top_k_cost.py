"""What keeping only the teacher's top-k logits per token costs a distilled language model.

Runs `language_model` jobs in-process (SQLite, local store, a temporary folder), the same spec
each time but `distill.soft_label_top_k`: full float16 rows, then k = 64, 32, 8. The teacher is
trained again in every job, bit for bit the same (same seed), so the students differ only by
the labels they read. Prints the student's test bits per byte for each, the store's bytes per
token, and the teacher's and baseline's figures.

    .venv/bin/python examples/lm_top_k_cost.py [--bytes 400000] [--epochs 3]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.inprocess import run_job, temporary_settings
from worker.softlabels import bytes_per_example

VOCAB = 256


def spec(args: argparse.Namespace, top_k: int | None) -> dict[str, Any]:
    context = 128
    train = {"batch_size": 64, "optimizer": "adamw", "lr": 0.003, "lr_schedule": "cosine"}
    return {
        "task": "language_model",
        "dataset": {
            "name": "pystdlib",
            "options": {"context": context, "max_bytes": args.bytes},
            "val_fraction": 0.05,
        },
        "teacher": {
            "arch": "gpt",
            "params": {"layers": 2, "heads": 4, "dim": 64, "context": context},
            "train": {**train, "epochs": args.teacher_epochs},
        },
        "student": {
            "arch": "gpt",
            "params": {"layers": 1, "heads": 2, "dim": 32, "context": context},
        },
        "distill": {
            **train,
            "epochs": args.epochs,
            "temperature": 1.0,
            "soft_labels": "stored",
            "soft_label_top_k": top_k,
        },
        "baseline": top_k is None,
        "export": ["safetensors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=400_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=10)
    args = parser.parse_args()
    rows = []
    with temporary_settings() as settings:
        for top_k in (None, 64, 32, 8):
            job, _ = run_job(settings, spec(args, top_k))
            report = job.result
            if top_k is None:
                print(
                    f"teacher {report['teacher']['test_bits_per_byte']:.4f} bpb, "
                    f"baseline {report['baseline']['test_bits_per_byte']:.4f} bpb"
                )
                full = report["student"]["test_bits_per_byte"]
            student = report["student"]["test_bits_per_byte"]
            row = {
                "top_k": top_k or "full",
                "bytes_per_token": bytes_per_example(VOCAB, top_k),
                "student_bpb": student,
                "vs_full": round(student - full, 4),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'labels':<8} {'bytes/token':>12} {'student bpb':>12} {'vs full':>9}")
    for row in rows:
        label = "full" if row["top_k"] == "full" else f"top-{row['top_k']}"
        print(
            f"{label:<8} {row['bytes_per_token']:>12} {row['student_bpb']:>12.4f} "
            f"{row['vs_full']:>+9.4f}"
        )


if __name__ == "__main__":
    main()
