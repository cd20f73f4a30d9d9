"""Token-level KD from stored top-k soft labels vs a bare loop training the student alone
(issue 8: >= 0.85 x the bare loop's tokens/s).

Side by side in one process: a bare loop (the `gpt` student on the same windows of the
`pystdlib` corpus in one tensor, AdamW, next-byte cross-entropy, a fresh permutation per epoch:
nothing but the model's step) and real `language_model` jobs run in-process through the
pipeline (SQLite, local store), whose distill stage records tokens/s per epoch (training steps
only, as for the bare loop), with the teacher's logits read from the store:
- top-k: `soft_label_top_k` k (the k largest logits per token and their log-sum-exp);
- full: every logit per token, float16.
Rounds alternate bare and job so both see the same machine; the table holds each run's median
epoch (the first is warm-up).

With --hf (issue 19), the same comparison for a Hugging Face causal LM: a Llama teacher
(random init, --dim wide, 4 layers, a byte-level BPE tokenizer of --vocab tokens trained on the
standard library) uploaded as an `hf` teacher, the corpus cut into its tokens, a `from_teacher`
student of layers 0 and 2, KD from the stored top-k tokens; the bare loop trains that same
student (the same two layers, the same init) with next-token CE on the same token windows.

    .venv/bin/python benchmarks/lm_distill_throughput.py [--bytes 400000] [--top-k 32]
    .venv/bin/python benchmarks/lm_distill_throughput.py --hf [--top-k 16] [--dim 128]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.settings import Settings
from benchmarks.inprocess import run_job, temporary_settings
from distillery.types.catalog.models import GptParams
from worker.allocator import tune_allocator
from worker.data import load_dataset
from worker.models.gpt import Gpt


def job_spec(args: argparse.Namespace, top_k: int | None) -> dict[str, Any]:
    return {
        "task": "language_model",
        "dataset": {
            "name": "pystdlib",
            "options": {"context": args.context, "max_bytes": args.bytes},
            "val_fraction": 0.05,
        },
        "teacher": {
            "arch": "gpt",
            "params": {"layers": 2, "heads": 2, "dim": 64, "context": args.context},
            "train": {"epochs": 1, "batch_size": args.batch_size, "optimizer": "adamw"},
        },
        "student": {"arch": "gpt", "params": student_params(args)},
        "distill": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "adamw",
            "temperature": 1.0,
            "soft_labels": "stored",
            "soft_label_top_k": top_k,
        },
        "baseline": False,
        "export": ["safetensors"],
    }


def hf_job_spec(args: argparse.Namespace, file_id: str, top_k: int | None) -> dict[str, Any]:
    """The same job with the uploaded HF teacher and a student from its layers."""
    return {
        **job_spec(args, top_k),
        "teacher": {"source": "hf", "file_id": file_id},
        "student": {"source": "from_teacher", "layers": HF_LAYERS},
    }


HF_LAYERS = [0, 2]


def hf_teacher(args: argparse.Namespace, settings: Settings, tmp: Path) -> tuple[str, Path]:
    """The Llama teacher saved and uploaded (the real upload check); (file id, its folder)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.worker.teachers.tiny_causal_lm import END, train_tokenizer
    from tests.worker.teachers.tiny_hf import add_hf_teacher, zip_folder

    tokenizer = train_tokenizer(args.vocab)
    end = tokenizer.convert_tokens_to_ids(END)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.dim,
        intermediate_size=args.dim * 2,
        num_hidden_layers=4,
        num_attention_heads=args.heads * 2,
        num_key_value_heads=args.heads,
        max_position_embeddings=args.context,
        bos_token_id=end,
        eos_token_id=end,
    )
    folder = tmp / "teacher"
    LlamaForCausalLM(config).eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return add_hf_teacher(settings, tmp, zip_folder(folder)), folder


def hf_bare_loop(args: argparse.Namespace, folder: Path) -> list[float]:
    """Tokens/s of each epoch of the plainest loop training the same from_teacher student."""
    from worker.causal_lm.loading import load_folder
    from worker.causal_lm.shrink import keep_layers
    from worker.causal_lm.vocabulary import HfVocabulary
    from worker.data.text import stdlib_documents, windows

    lm = load_folder(folder)
    vocabulary = HfVocabulary(lm.tokenizer, lm.model.config.vocab_size, folder.name)
    tokens = vocabulary.encode(stdlib_documents(args.bytes))
    x_all, y_all, _, _ = windows(tokens, args.context)
    train = len(x_all) - max(1, round(len(x_all) * 0.05))
    x = torch.from_numpy(x_all[:train].astype("int64"))
    y = torch.from_numpy(y_all[:train].astype("int64"))
    # The job's device (a GPU when there is one), data on it as a bare loop would keep it.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = x.to(device), y.to(device)
    torch.manual_seed(0)
    model = keep_layers(lm.model, HF_LAYERS).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.003)
    rates = []
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), device=device)
        started = time.perf_counter()
        for start in range(0, len(x), args.batch_size):
            index = order[start : start + args.batch_size]
            logits = model(input_ids=x[index]).logits
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), y[index].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(x.numel() / (time.perf_counter() - started))
    return rates


def student_params(args: argparse.Namespace) -> dict[str, int]:
    return {"layers": args.layers, "heads": args.heads, "dim": args.dim, "context": args.context}


def distill_rates(settings: Settings, spec: dict[str, Any]) -> list[float]:
    """The distill stage's tokens/s, epoch by epoch."""
    _, metrics = run_job(settings, spec)
    return [m.values["tokens_per_second"] for m in metrics if m.stage == "distill"]


def bare_loop(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Tokens/s of each epoch of the plainest loop training the same student."""
    torch.manual_seed(0)
    params = GptParams(**student_params(args))
    model = Gpt(params)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.003)
    rates = []
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        started = time.perf_counter()
        for start in range(0, len(x), args.batch_size):
            index = order[start : start + args.batch_size]
            logits = model(x[index])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), y[index].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        rates.append(x.numel() / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=400_000)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hf", action="store_true", help="an HF Llama teacher and student")
    parser.add_argument("--vocab", type=int, default=2048, help="--hf: the tokenizer's size")
    args = parser.parse_args()
    # As the jobs' worker does (lifecycle), before the first bare round too.
    tune_allocator(Settings())

    runs: dict[str, list[float]] = {"bare": [], "top-k": [], "full": []}
    with temporary_settings() as settings, tempfile.TemporaryDirectory() as tmp:
        if args.hf:
            file_id, folder = hf_teacher(args, settings, Path(tmp))

            def bare() -> list[float]:
                return hf_bare_loop(args, folder)

            def job(top_k: int | None) -> dict[str, Any]:
                return hf_job_spec(args, file_id, top_k)
        else:
            raw = load_dataset("pystdlib", {"context": args.context, "max_bytes": args.bytes})
            # The job trains on 95% of the train windows (val_fraction 0.05): so does the bare
            # loop.
            train = len(raw.x) - max(1, round(len(raw.x) * 0.05))
            x = torch.from_numpy(raw.x[:train].astype("int64"))
            y = torch.from_numpy(raw.y[:train])

            def bare() -> list[float]:
                return bare_loop(args, x, y)

            def job(top_k: int | None) -> dict[str, Any]:
                return job_spec(args, top_k)

        for round_ in range(args.rounds):
            for name in ("bare", "top-k", "bare", "full"):
                if name == "bare":
                    rates = bare()
                else:
                    rates = distill_rates(settings, job(args.top_k if name == "top-k" else None))
                runs[name].append(statistics.median(rates[1:] or rates))
                print(f"round {round_ + 1} {name}: {runs[name][-1]:.0f} tokens/s", flush=True)

    bare = statistics.median(runs["bare"])
    rows = []
    for name, target in (("bare", None), ("top-k", 0.85), ("full", None)):
        value = statistics.median(runs[name])
        rows.append(
            {
                "run": name,
                "tokens_per_second": round(value),
                "ratio": round(value / bare, 3),
                "target": target,
            }
        )
    student = f"hf llama layers {HF_LAYERS} of 4" if args.hf else f"gpt {student_params(args)}"
    print(
        f"\n{student} student, batch {args.batch_size}, {args.bytes} bytes x "
        f"{args.epochs} epochs, top-k {args.top_k}, {torch.get_num_threads()} threads"
    )
    print(f"{'run':<8} {'tokens/s':>10} {'x bare':>8} {'target':>8}")
    for row in rows:
        target = f">= {row['target']:.2f}" if row["target"] else ""
        print(f"{row['run']:<8} {row['tokens_per_second']:>10} {row['ratio']:>8.3f} {target:>8}")
    out = Path(__file__).with_name(Path(__file__).stem + ("_hf" if args.hf else "") + ".json")
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "table": rows}, indent=2))


if __name__ == "__main__":
    main()
