"""Structured pruning with torch-pruning (Fang et al., DepGraph, CVPR 2023): the layers whose
channels are coupled (a convolution's outputs, the batch norm after it, the next layer's
inputs, both sides of a residual sum) form a group, ranked by an importance criterion and
removed whole, so the pruned model is a smaller dense model, not a masked one.

Pruning goes in steps of STEP_RATIO of every prunable layer's channels (at most MAX_RATIO of
them), until the target holds; the layer that writes the logits keeps its outputs. The same
model, importance and number of steps give the same pruned architecture again (l1 / l2 read
only the weights; taylor reads gradients of fixed batches), which is how a resumed job
rebuilds it before loading its weights."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from worker.models import count_params

STEP_RATIO = 0.05
MAX_RATIO = 0.95
MAX_STEPS = round(MAX_RATIO / STEP_RATIO)
# The layers whose channel counts the report lists (what pruning changes).
CHANNEL_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)
METHOD = "torch-pruning MetaPruner (DepGraph channel groups, uniform ratio per layer)"

# Fills the model's .grad with the loss the taylor importance weighs (None: l1 / l2).
Gradients = Callable[[nn.Module], None]


class CannotPrune(ValueError):
    """The model has nothing left to prune before its target holds."""


@dataclass(frozen=True)
class PruneResult:
    steps: int
    channel_ratio: float  # the fraction of each prunable layer's channels removed
    params_before: int
    params_after: int


def output_layer(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """The last layer that writes as many features as the model has outputs: its outputs
    are the classes, which pruning must keep."""
    with torch.no_grad():
        outputs = model(example).shape[-1]
    last = None
    for module in model.modules():
        width = _width(module)
        if width == outputs:
            last = module
    if last is None:
        raise CannotPrune(f"no layer writes the model's {outputs} outputs")
    return last


def channels(model: nn.Module) -> dict[str, int]:
    """Each linear / convolution / embedding layer's output width, by name."""
    return {
        name: width
        for name, module in model.named_modules()
        if isinstance(module, CHANNEL_LAYERS) and (width := _width(module)) is not None
    }


def _width(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return module.out_channels
    if isinstance(module, nn.Embedding):
        return module.embedding_dim
    return None


def prune(
    model: nn.Module,
    example: torch.Tensor,
    importance: str,
    reached: Callable[[nn.Module], bool] | None = None,
    *,
    steps: int | None = None,
    gradients: Gradients | None = None,
) -> PruneResult:
    """Prune `model` in place, a step at a time, until `reached(model)`, or for exactly
    `steps` steps (a replay). CannotPrune when MAX_RATIO of the channels are gone and the
    target still does not hold."""
    import torch_pruning as tp

    assert (reached is None) != (steps is None), "a target or a number of steps"
    before = count_params(model)
    model.eval()
    criterion = {
        "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
        "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
        "taylor": lambda: tp.importance.GroupTaylorImportance(),
    }[importance]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch-pruning warns of layers it leaves as they are
        pruner = tp.pruner.MetaPruner(
            model,
            example,
            importance=criterion,
            pruning_ratio=MAX_RATIO,
            iterative_steps=MAX_STEPS,
            ignored_layers=[output_layer(model, example)],
        )
        done = 0
        while done < (MAX_STEPS if steps is None else steps):
            if reached is not None and reached(model):
                break
            if gradients is not None:
                model.zero_grad()
                gradients(model)
            pruner.step()
            done += 1
        model.zero_grad(set_to_none=True)
    if reached is not None and not reached(model):
        raise CannotPrune(
            f"the target does not hold with {MAX_RATIO:.0%} of every layer's channels removed "
            f"({count_params(model)} of {before} parameters left)"
        )
    return PruneResult(done, round(done * STEP_RATIO, 4), before, count_params(model))
