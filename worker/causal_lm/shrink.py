"""Smaller models of a teacher's family: its own architecture with only some of its layers,
initialised from them (`from_teacher`: DistilBERT's every other layer, Minitron's depth
pruning), or its config with overrides, initialised at random (`config`)."""

import copy
from typing import Any

from torch import nn

from distillery.types.catalog import SpecError
from worker.causal_lm.loading import transformers


def layer_count(model: Any) -> int:
    return int(model.config.num_hidden_layers)


def every_other(count: int) -> list[int]:
    return list(range(0, count, 2))


def keep_layers(model: Any, layers: list[int], param: str = "student.layers") -> Any:
    """A copy of `model` with only `layers` (teacher indices, in the order given) of its
    decoder layers, each with the teacher's weights; embeddings, final norm and head too."""
    count = layer_count(model)
    wrong = [i for i in layers if i >= count]
    if wrong:
        raise SpecError(param, f"the teacher has layers 0 to {count - 1}; not {wrong}")
    if len(set(layers)) != len(layers):
        raise SpecError(param, f"a layer is listed twice: {layers}")
    student = copy.deepcopy(model)
    parent, name, stack = _decoder_layers(student, count)
    kept = nn.ModuleList(stack[i] for i in layers)
    setattr(parent, name, kept)
    for index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):  # where the KV cache keeps the layer's keys
                setattr(module, "layer_idx", index)  # noqa: B010
    config = student.config
    layer_types = getattr(config, "layer_types", None)
    config.num_hidden_layers = len(layers)
    if isinstance(layer_types, list) and len(layer_types) == count:
        config.layer_types = [layer_types[i] for i in layers]
    return student


def _decoder_layers(model: Any, count: int) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent, attribute, list) of the model's decoder layers: the outermost ModuleList of
    `count` modules (model.layers in Llama and Qwen, transformer.h in GPT-2)."""
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            parent_path, _, name = path.rpartition(".")
            return model.get_submodule(parent_path), name, module
    raise SpecError(
        "student.source",
        f"{type(model).__name__}: no list of its {count} layers found to keep some of",
    )


def from_config(model: Any, overrides: dict[str, Any], seed: int) -> Any:
    """A model of the teacher's class from its config with `overrides`, random init under
    `seed`; the vocabulary stays the teacher's (the tokenizer is)."""
    import torch

    base = model.config.to_dict()
    for key in overrides:
        if key not in base:
            raise SpecError(
                f"student.overrides.{key}",
                f"{key!r} is not a field of the teacher's config ({model.config.model_type})",
            )
        if key == "vocab_size":
            raise SpecError("student.overrides.vocab_size", "the vocabulary is the teacher's")
    values = {**base, **overrides}
    if "num_hidden_layers" in overrides or "n_layer" in overrides:
        values.pop("layer_types", None)  # derived again for the new depth
    try:
        config = type(model.config)(**values)
        torch.manual_seed(seed)
        student = transformers().AutoModelForCausalLM.from_config(config)
    except (TypeError, ValueError) as exc:
        raise SpecError("student.overrides", f"the config does not build: {exc}") from None
    return student.float().eval()
