"""Export the student (safetensors, ONNX, TorchScript) and measure size and CPU latency."""

import logging
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

INPUT_NAME = "x"
OUTPUT_NAME = "logits"


@runtime_checkable
class Tokenizes(Protocol):
    """A model that cuts its raw inputs into tokens before its graph
    (worker/hf_classifier.py): its ONNX graph is `token_graph()`, fed by `onnx_feed`."""

    def onnx_feed(self, rows: torch.Tensor) -> dict[str, np.ndarray]: ...

    def token_graph(self) -> nn.Module: ...

    def signature(self) -> dict[str, Any]:
        """The token graph's inputs and output, as the manifest lists them."""
        ...

    def preprocessing(self) -> dict[str, Any]:
        """How raw text becomes the graph's inputs, as the manifest says."""
        ...


def onnx_feed(model: Any, names: tuple[str, str], x: torch.Tensor) -> dict[str, np.ndarray]:
    """What `model`'s exported graph is fed for raw inputs `x`."""
    if isinstance(model, Tokenizes):
        return model.onnx_feed(x)
    return {names[0]: x.cpu().numpy()}


def save_safetensors(model: nn.Module, path: Path) -> None:
    """Written to a temporary name and renamed: a file that exists is complete. A tensor
    shared under two names (tied embeddings and head, as in GPT-2) is written under each: the
    file then loads with load_file + load_state_dict like any other."""
    state, seen = {}, set()
    for name, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
        state[name] = tensor.clone() if key in seen else tensor
        seen.add(key)
    partial = path.with_name(path.name + ".partial")
    save_file(state, str(partial))
    os.replace(partial, path)


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    names: tuple[str, str] = (INPUT_NAME, OUTPUT_NAME),
    *,
    dynamic_time: bool = False,
) -> None:
    """Raw inputs in, logits out, any batch size (and, with `dynamic_time`, any sequence
    length up to the example's). A model that tokenizes (`Tokenizes`) is exported as its
    token graph: its feeds in (any batch and length), logits out."""
    model = model.cpu().eval()
    if isinstance(model, Tokenizes):
        feed = model.onnx_feed(example.cpu())
        inputs = tuple(torch.from_numpy(v) for v in feed.values())
        length = torch.export.Dim("tokens", min=1, max=1 << 16)
        axes = {0: torch.export.Dim("batch", min=1, max=1 << 20), 1: length}
        _export(model.token_graph(), inputs, path, list(feed), names[1], tuple(axes for _ in feed))
        return
    # The exporter logs every op registry it skips (torchvision's, among others): noise here.
    for name in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dims = {0: batch}
    if dynamic_time:
        dims[1] = torch.export.Dim("time", min=1, max=example.shape[1])
    _export(model, (example.cpu(),), path, [names[0]], names[1], (dims,))


def _export(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_name: str,
    dynamic: tuple[dict[int, Any], ...],
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(path),
            input_names=input_names,
            output_names=[output_name],
            dynamic_shapes=dynamic,
            dynamo=True,
            external_data=False,  # one self-contained file
            verbose=False,
        )
    _strip_debug_metadata(path)


def _strip_debug_metadata(path: Path) -> None:
    """Drop what the exporter records on every node for debugging (the Python stack trace
    with this worker's file paths and source lines, the module hierarchy, the FX node): a
    downloaded graph shows nothing of the server, and is smaller (a fifth of an int8
    resnet_cifar 20)."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
    for function in model.functions:
        for node in function.node:
            del node.metadata_props[:]
    partial = path.with_name(path.name + ".partial")
    onnx.save(model, str(partial))
    os.replace(partial, path)


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    model = model.cpu().eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example.cpu())
        traced.save(str(path))


def onnx_max_abs_diff(
    model: nn.Module,
    path: Path,
    x: torch.Tensor,
    names: tuple[str, str] = (INPUT_NAME, OUTPUT_NAME),
) -> float:
    """How far onnxruntime's logits are from PyTorch's on `x` (a check of the export)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run([names[1]], onnx_feed(model, names, x))[0]
    with torch.no_grad():
        reference = model.cpu().eval()(x).numpy()
    return float(np.abs(ours - reference).max())


@torch.no_grad()
def cpu_latency_ms(model: nn.Module, example: torch.Tensor, runs: int = 50) -> float:
    """Median batch-1 latency on one CPU thread, after warm-up."""
    model = model.cpu().eval()
    x = example[:1].cpu()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(5):
            model(x)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)
