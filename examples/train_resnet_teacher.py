"""Train a zoo `resnet_cifar` teacher with plain PyTorch and save it for a `weights` teacher.

The model is built with the service's own `build_model`, so the safetensors file carries the
names a `weights` teacher expects (`net.*`, plus the input normalisation `mean` and `std`):

    PYTHONPATH=. python examples/train_resnet_teacher.py fm.npz --output teacher.safetensors
    curl -s localhost:8000/v1/files -F file=@teacher.safetensors -F purpose=teacher

and then `{"source": "weights", "arch": "resnet_cifar", "params": {"depth": 56}, "file_id": ...}`.
"""

import argparse
import time

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from worker.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help=".npz with x, y, x_test, y_test (uint8 images)")
    parser.add_argument("--depth", type=int, default=56)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="teacher.safetensors")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data = np.load(args.dataset, allow_pickle=False)
    x = torch.from_numpy(data["x"]).float()
    y = torch.from_numpy(data["y"]).long()
    x_test = torch.from_numpy(data["x_test"]).float()
    y_test = torch.from_numpy(data["y_test"]).long()
    # One mean and std per channel, shaped (C, 1, 1) to broadcast over (N, C, H, W).
    mean = x.mean(dim=(0, 2, 3)).reshape(-1, 1, 1)
    std = x.std(dim=(0, 2, 3)).reshape(-1, 1, 1)
    num_classes = int(y.max()) + 1
    model = build_model(
        "resnet_cifar",
        {"depth": args.depth, "width": args.width},
        tuple(x.shape[1:]),
        num_classes,
        mean,
        std,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * ((len(x) + args.batch_size - 1) // args.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), args.batch_size):
            batch = order[i : i + args.batch_size]
            loss = loss_fn(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        seconds = time.perf_counter() - start
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / len(x):.4f}, "
            f"{seconds:.0f} s ({len(x) / seconds:.0f} images/s)",
            flush=True,
        )
    model.eval()
    with torch.no_grad():
        predictions = torch.cat(
            [model(x_test[i : i + 500]).argmax(1) for i in range(0, len(x_test), 500)]
        )
    accuracy = float((predictions == y_test).float().mean())
    print(f"test accuracy {accuracy:.4f} on {len(x_test)} images")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, args.output)
    print(f"wrote {args.output}: {len(state)} tensors")


if __name__ == "__main__":
    main()
