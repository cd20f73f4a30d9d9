"""Train a small CNN teacher on an image .npz, export it to ONNX and write its logits.

Plain PyTorch, no Distillery code: this stands for "a teacher you trained elsewhere".

    python examples/train_onnx_teacher.py fashion-mnist.npz --epochs 4 --output-dir teacher/

Reads an .npz with x uint8 (N, C, H, W) (raw 0..255), y int64, optional x_test / y_test (the
layout examples/fashion_mnist_to_npz.py writes). Writes to --output-dir:

    teacher.onnx   one self-contained file; input "x" float32 (batch, C, H, W) of RAW pixel
                   values 0..255 (the /255 and mean/std normalisation is inside the graph),
                   output "logits" (batch, classes); the batch dimension is dynamic
    logits.npz     logits: float32 (N, classes), the teacher's logits for every row of x in file
                   order; logits_test: the same for x_test (when the .npz has one)
    teacher.json   test accuracy, parameter count, timings

Upload teacher.onnx with purpose "teacher" and logits.npz with purpose "logits".
CPU-friendly: 20,000 Fashion-MNIST images x 4 epochs take a few minutes on 2 cores.
"""

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


class Teacher(nn.Module):
    """conv32-pool-conv64-pool-conv64-fc128 on raw 0..255 pixels (about 0.4M parameters)."""

    def __init__(
        self, shape: tuple[int, int, int], num_classes: int, mean: float, std: float
    ) -> None:
        super().__init__()
        channels, height, width = shape
        # Buffers, so they are saved with the weights and exported as graph constants.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(channels, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            nn.MaxPool2d(2),
            *block(64, 64),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * (height // 4) * (width // 4), 128),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x / 255.0 - self.mean) / self.std
        return self.head(self.features(x))


def load(path: Path, labelled: bool = True) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for key in ("x", "y") if labelled else ("x",):
        if key not in arrays:
            raise SystemExit(f"{path}: no array {key!r} (found {sorted(arrays)})")
    if arrays["x"].ndim != 4:
        raise SystemExit(f"{path}: x must be (N, C, H, W) images, got {arrays['x'].shape}")
    return arrays


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    model.eval()
    out = [
        model(torch.from_numpy(x[i : i + batch_size].astype(np.float32)))
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float32)


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(1, epochs + 1):
        model.train()
        started, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            rows = order[i : i + batch_size]
            xb = torch.from_numpy(x[rows].astype(np.float32))
            # Random horizontal flips: clothes look the same mirrored.
            flip = torch.from_numpy(rng.random(len(rows)) < 0.5)[:, None, None, None]
            xb = torch.where(flip, xb.flip(-1), xb)
            yb = torch.from_numpy(y[rows])
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(rows)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(rows)
        print(
            f"epoch {epoch}/{epochs}: loss {total / seen:.4f}, train accuracy "
            f"{correct / seen:.4f} ({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """One self-contained file, input "x" with a dynamic batch dimension, output "logits"."""
    model.eval()
    for name in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("npz", type=Path, help="dataset .npz (x, y, optional x_test, y_test)")
    parser.add_argument("--output-dir", type=Path, default=Path("teacher"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument(
        "--transfer",
        type=Path,
        default=None,
        help="an unlabelled .npz (x) the job uses as its transfer set: its logits are appended "
        "after the dataset's rows, as a logits upload expects",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = load(args.npz)
    x, y = data["x"], data["y"].astype(np.int64)
    num_classes = int(max(y.max(), data["y_test"].max() if "y_test" in data else 0)) + 1
    if "class_names" in data:
        num_classes = max(num_classes, len(data["class_names"]))
    pixels = x.astype(np.float32) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std()) or 1.0
    model = Teacher(x.shape[1:], num_classes, mean, std)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{len(x):,} training images {x.shape[1:]}, {num_classes} classes, "
        f"teacher {params:,} parameters",
        file=sys.stderr,
    )

    started = time.perf_counter()
    train(model, x, y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    train_seconds = time.perf_counter() - started

    report: dict = {"params": params, "epochs": args.epochs, "train_rows": len(x)}
    logits = {"logits": predict(model, x)}
    report["train_accuracy"] = float((logits["logits"].argmax(1) == y).mean())
    if args.transfer is not None:
        transfer = load(args.transfer, labelled=False)["x"]
        logits["logits"] = np.concatenate([logits["logits"], predict(model, transfer)])
        report["transfer_rows"] = len(transfer)
    if "x_test" in data:
        logits["logits_test"] = predict(model, data["x_test"])
        if "y_test" in data:
            report["test_rows"] = len(data["x_test"])
            report["test_accuracy"] = float(
                (logits["logits_test"].argmax(1) == data["y_test"]).mean()
            )

    args.output_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.output_dir / "teacher.onnx"
    example = torch.from_numpy(x[:2].astype(np.float32))
    export_onnx(model, example, onnx_path)
    with (args.output_dir / "logits.npz").open("wb") as f:
        np.savez(f, **logits)
    report["train_seconds"] = round(train_seconds, 1)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["onnx_bytes"] = onnx_path.stat().st_size
    (args.output_dir / "teacher.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report), file=sys.stderr)
    if "test_accuracy" in report:
        print(f"teacher test accuracy {report['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
