"""How a training step uses the device: its arithmetic, memory format, compilation.

The job spec's `precision` decides the arithmetic. `float32` (the default): every step as a
plain PyTorch loop takes it, on every device. `mixed`: bf16 autocast where the GPU has it (no
loss scaling needed), else fp16 with a GradScaler, and channels_last for conv nets on image
batches; bf16 autocast on the CPU. Optionally `torch.compile` (DISTILLERY_TORCH_COMPILE). The
worker's thread count is set once (DISTILLERY_TORCH_THREADS). The training loop asks the plan
for each of these, so a step is the same code on every device.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from app.settings import Settings


@dataclass(frozen=True)
class Precision:
    device: torch.device
    autocast: torch.dtype | None = None  # None: float32
    channels_last: bool = False
    compile: bool = False

    @property
    def scaled(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16's range needs none."""
        return self.autocast == torch.float16

    @contextlib.contextmanager
    def forward(self) -> Iterator[None]:
        """The context a forward pass and its loss run in."""
        if self.autocast is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.autocast):
            yield

    def scaler(self) -> "torch.amp.GradScaler":
        return torch.amp.GradScaler(self.device.type, enabled=self.scaled)

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model in the memory format the plan wants (in place); returns what the step
        calls (the compiled module when compiling; its weights are the model's)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if self.compile:
            return torch.compile(model)  # type: ignore[return-value]
        return model

    def release(self, model: nn.Module) -> None:
        """Back to the default memory format once training is over: what is evaluated,
        measured on the CPU and exported is the plain model."""
        if self.channels_last:
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


def plan_precision(
    settings: Settings,
    device: torch.device,
    input_shape: tuple[int, ...],
    arithmetic: str = "float32",
) -> Precision:
    """What a job's training uses on `device` for inputs of `input_shape` (one example), in the
    spec's `precision` (`arithmetic`): float32 as is, or mixed (bf16 autocast; fp16 with a
    scaler on a GPU without bf16; channels_last images on CUDA)."""
    if arithmetic == "float32":
        return Precision(device, compile=settings.torch_compile)
    if device.type != "cuda":
        return Precision(device, torch.bfloat16, compile=settings.torch_compile)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    images = len(input_shape) == 3
    return Precision(device, dtype, channels_last=images, compile=settings.torch_compile)


def set_worker_threads(settings: Settings) -> None:
    """The intra-op threads of this worker process (several workers on one host share it)."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)


def pinned(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`: through pinned memory and asynchronously on CUDA."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def describe(precision: Precision) -> dict[str, Any]:
    return {
        "device": str(precision.device),
        "autocast": str(precision.autocast).removeprefix("torch.") if precision.autocast else None,
        "channels_last": precision.channels_last,
        "compile": precision.compile,
    }
