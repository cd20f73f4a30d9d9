"""Smaller models of a teacher's family: its own architecture with only some of its layers,
initialised from them (`from_teacher`: DistilBERT's every other layer, Minitron's depth
pruning), optionally with narrower MLPs, fewer attention heads and a narrower hidden size
(Minitron's width pruning, what is kept chosen by weight magnitude or by the activations of
calibration tokens), or its config with overrides, initialised at random (`config`)."""

import copy
from dataclasses import dataclass
from typing import Any

import torch
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


@dataclass
class Activations:
    """Minitron's activation-based importance (Muralidharan et al. 2024), from the model
    reading calibration tokens: per decoder layer, each MLP neuron's mean |activation| (what
    its output projection reads) and each attention head's mean L2 norm of its output (what
    o_proj reads); per hidden channel, the mean |value| of every norm's output over the
    residual stream (each layer's two and the final one), summed. None where the model has
    no such module."""

    neurons: list[torch.Tensor] | None
    heads: list[torch.Tensor] | None
    hidden: torch.Tensor | None


def activation_importance(model: Any, tokens: torch.Tensor, batch: int = 8) -> Activations:
    """`model`'s Activations over `tokens` ((windows, time) ids), `batch` windows a pass."""
    count = layer_count(model)
    _, _, layers = _decoder_layers(model, count)
    heads = int(model.config.num_attention_heads)
    sums: dict[str, torch.Tensor] = {}
    hooks = []

    def adding(key: str, reduce: Any) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any = None) -> None:
            value = reduce((args[0] if output is None else output).detach().float())
            sums[key] = sums[key] + value if key in sums else value

        return hook

    def channels(x: torch.Tensor) -> torch.Tensor:
        return x.abs().flatten(0, -2).sum(0)

    def per_head(x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (heads, -1)).norm(dim=-1).flatten(0, -2).sum(0)

    for i, layer in enumerate(layers):
        mlp, attention = getattr(layer, "mlp", None), getattr(layer, "self_attn", None)
        reads = getattr(mlp, "down_proj", None) or getattr(mlp, "c_proj", None)
        if reads is not None:
            hooks.append(reads.register_forward_pre_hook(adding(f"neurons.{i}", channels)))
        head_reads = getattr(attention, "o_proj", None)
        if head_reads is not None:
            hooks.append(head_reads.register_forward_pre_hook(adding(f"heads.{i}", per_head)))
        for name in _NORMS:
            if hasattr(layer, name):
                norm = getattr(layer, name)
                hooks.append(norm.register_forward_hook(adding("hidden", channels)))
    final = getattr(getattr(model, "model", None), "norm", None)
    if final is not None:
        hooks.append(final.register_forward_hook(adding("hidden", channels)))
    try:
        with torch.no_grad():
            for start in range(0, len(tokens), batch):
                model(input_ids=tokens[start : start + batch])
    finally:
        for hook in hooks:
            hook.remove()

    def listed(kind: str) -> list[torch.Tensor] | None:
        found = [sums.get(f"{kind}.{i}") for i in range(count)]
        return None if any(f is None for f in found) else [f for f in found if f is not None]

    return Activations(listed("neurons"), listed("heads"), sums.get("hidden"))


def narrow_mlp(
    model: Any,
    width: int,
    param: str = "student.intermediate",
    scores: list[torch.Tensor] | None = None,
) -> Any:
    """`model` with each decoder layer's MLP cut to its `width` most important neurons, in
    place. A neuron's importance is the L2 norm of every weight it owns (its rows of the input
    projections, its column of the output projection): Minitron's width pruning, with weight
    magnitude for the importance. Gated MLPs (gate_proj / up_proj / down_proj: Llama, Qwen,
    Mistral) and GPT-2's (c_fc / c_proj) are cut; another kind is refused. `scores`, per
    layer, replaces the weight norms (Activations.neurons)."""
    config = model.config
    count = layer_count(model)
    _, _, layers = _decoder_layers(model, count)
    for i, layer in enumerate(layers):
        mlp = getattr(layer, "mlp", None)
        score = None if scores is None else scores[i]
        if all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
            _narrow_gated(mlp, width, param, score)
        elif all(hasattr(mlp, n) for n in ("c_fc", "c_proj")):
            _narrow_gpt2(mlp, width, param, score)
        elif _bert_mlp(layer) is not None:
            _narrow_bert(layer, width, param, score)
        else:
            raise SpecError(
                param,
                f"{type(model).__name__}: its MLPs are not of a kind cut here (gated "
                "gate/up/down projections, GPT-2's c_fc/c_proj, or BERT's "
                "intermediate/output dense layers)",
            )
    if hasattr(config, "intermediate_size"):
        config.intermediate_size = width
    else:
        config.n_inner = width
    return model


def prune_heads(
    model: Any,
    heads: int,
    param: str = "student.heads",
    scores: list[torch.Tensor] | None = None,
) -> Any:
    """`model` with each decoder layer's attention cut to `heads` query heads, in place: in
    each group of query heads that shares a key/value head (grouped-query attention), the
    same number, those whose weights have the largest L2 norm (their rows of q_proj, their
    columns of o_proj). Key/value heads are all kept, so `heads` is a multiple of their count;
    each head keeps its width (`head_dim`, written into the config). Attention with
    q/k/v/o projections (Llama, Qwen, Mistral) is cut; another kind is refused (GPT-2's
    config has no head width of its own, so fewer heads would reload wider). `scores`, per
    layer, replaces the weight norms (Activations.heads)."""
    count = layer_count(model)
    _, _, layers = _decoder_layers(model, count)
    attentions: list[Any] = [getattr(layer, "self_attn", None) for layer in layers]
    if not all(
        all(hasattr(a, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) for a in attentions
    ):
        raise SpecError(
            param,
            f"{type(model).__name__}: its attention is not of a kind cut here (q/k/v/o "
            "projections, as in Llama, Qwen and Mistral)",
        )
    config = model.config
    total = int(config.num_attention_heads)
    groups = int(getattr(config, "num_key_value_heads", None) or total)
    if not 1 <= heads < total or heads % groups:
        raise SpecError(
            param,
            f"the teacher has {total} attention heads sharing {groups} key/value heads; keep "
            f"a multiple of {groups} below {total}",
        )
    width = int(getattr(config, "head_dim", None) or config.hidden_size // total)
    per_group, group = heads // groups, total // groups
    for i, attention in enumerate(attentions):
        q, o = attention.q_proj, attention.o_proj
        if scores is None:
            score = q.weight.detach().view(total, -1).pow(2).sum(1)
            score += o.weight.detach().view(-1, total, width).pow(2).sum((0, 2))
        else:
            score = scores[i]
        # Per group of `group` query heads, the `per_group` largest, in their order.
        best = score.view(groups, group).topk(per_group, dim=1).indices.sort(dim=1).values
        kept = (best + torch.arange(groups)[:, None] * group).flatten()
        index = (kept[:, None] * width + torch.arange(width)).flatten()
        attention.q_proj = _sliced(q, index, 0)
        attention.o_proj = _sliced(o, index, 1)
        attention.num_key_value_groups = per_group
        if hasattr(attention, "num_heads"):
            attention.num_heads = heads
    config.num_attention_heads = heads
    config.head_dim = width
    return model


# What a Llama-like decoder layer holds, by what its hidden-size side is: the projections
# that read the residual stream (their input columns), those that write it (their output
# rows) and the norms over it.
_READS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
)
_WRITES = ("self_attn.o_proj", "mlp.down_proj")
_NORMS = ("input_layernorm", "post_attention_layernorm")


def prune_hidden(
    model: Any,
    width: int,
    param: str = "student.hidden",
    scores: torch.Tensor | None = None,
) -> Any:
    """`model` with its hidden size (the residual stream, the embeddings' width) cut to the
    `width` channels whose weights have the largest L2 norm over every matrix that reads or
    writes them (embeddings, head, each layer's projections), in place: Minitron's embedding
    pruning, with weight magnitude for the importance. Each RMSNorm then averages over the
    kept channels, so unlike heads and MLP neurons this changes the model beyond dropping
    weights: distillation is what recovers it. Llama, Qwen and Mistral layers are cut
    (exactly q/k/v/o, gate/up/down and two norms); another kind is refused. `scores`
    replaces the weight norms (Activations.hidden)."""
    config = model.config
    full = int(config.hidden_size)
    count = layer_count(model)
    _, _, layers = _decoder_layers(model, count)
    inner = getattr(model, "model", None)
    known = {f"{m}.{p}" for m in _READS + _WRITES for p in ("weight", "bias")}
    known |= {f"{n}.weight" for n in _NORMS}
    outer = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    held = [n for n, _ in model.named_parameters()]
    unknown = [
        n
        for n in held
        if n not in outer and not (n.startswith("model.layers.") and n.split(".", 3)[-1] in known)
    ]
    if inner is None or unknown:
        raise SpecError(
            param,
            f"{type(model).__name__}: its layers are not of a kind whose width is cut here "
            f"(Llama, Qwen, Mistral){'; it holds ' + unknown[0] if unknown else ''}",
        )
    if not 1 <= width < full:
        raise SpecError(param, f"the teacher's hidden size is {full}; keep 1 to {full - 1}")
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = head.weight is embed.weight
    with torch.no_grad():
        if scores is None:
            scores = embed.weight.pow(2).sum(0)
            if not tied:
                scores += head.weight.pow(2).sum(0)
            for layer in layers:
                for name in _READS:
                    scores += _linear(layer, name).weight.pow(2).sum(0)
                for name in _WRITES:
                    scores += _linear(layer, name).weight.pow(2).sum(1)
        index = scores.topk(width).indices.sort().values
        embed.weight = nn.Parameter(embed.weight.index_select(1, index).clone())
        embed.embedding_dim = width
        head.weight = embed.weight if tied else nn.Parameter(head.weight.index_select(1, index))
        head.in_features = width
        norms = [inner.norm] + [layer.get_submodule(n) for layer in layers for n in _NORMS]
        for norm in norms:
            norm.weight = nn.Parameter(norm.weight.index_select(0, index).clone())
        for layer in layers:
            for name in _READS:
                _set_module(layer, name, _sliced(_linear(layer, name), index, 1))
            for name in _WRITES:
                _set_module(layer, name, _sliced(_linear(layer, name), index, 0))
    head_dim = getattr(config, "head_dim", None) or full // int(config.num_attention_heads)
    config.hidden_size = width
    config.head_dim = int(head_dim)
    return model


def _linear(layer: nn.Module, path: str) -> nn.Linear:
    module = layer.get_submodule(path)
    assert isinstance(module, nn.Linear), path
    return module


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _keep(width: int, full: int, scores: torch.Tensor, param: str) -> torch.Tensor:
    if not 1 <= width < full:
        raise SpecError(param, f"the teacher's MLPs have {full} neurons; keep 1 to {full - 1}")
    return torch.topk(scores, width).indices.sort().values


def _sliced(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of `linear` with only `index` of its outputs (dim 0) or inputs (dim 1)."""
    weight = linear.weight.detach().index_select(dim, index)
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    out = out.to(dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        out.weight.copy_(weight)
        if linear.bias is not None:
            out.bias.copy_(linear.bias if dim == 1 else linear.bias.index_select(0, index))
    return out


def _narrow_gated(mlp: Any, width: int, param: str, scores: torch.Tensor | None) -> None:
    gate, up, down = mlp.gate_proj, mlp.up_proj, mlp.down_proj
    if scores is None:
        scores = gate.weight.pow(2).sum(1) + up.weight.pow(2).sum(1) + down.weight.pow(2).sum(0)
    index = _keep(width, gate.out_features, scores.detach(), param)
    mlp.gate_proj = _sliced(gate, index, 0)
    mlp.up_proj = _sliced(up, index, 0)
    mlp.down_proj = _sliced(down, index, 1)
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = width


def _narrow_gpt2(mlp: Any, width: int, param: str, scores: torch.Tensor | None) -> None:
    """GPT-2's Conv1D keeps its weight as (inputs, outputs): c_fc (hidden, inner), c_proj
    (inner, hidden)."""
    fc, proj = mlp.c_fc, mlp.c_proj
    if scores is None:
        scores = fc.weight.pow(2).sum(0) + fc.bias.pow(2) + proj.weight.pow(2).sum(1)
    index = _keep(width, fc.weight.shape[1], scores.detach(), param)
    with torch.no_grad():
        fc.weight = nn.Parameter(fc.weight.index_select(1, index).clone())
        fc.bias = nn.Parameter(fc.bias.index_select(0, index).clone())
        fc.nf = width
        proj.weight = nn.Parameter(proj.weight.index_select(0, index).clone())


def _bert_mlp(layer: Any) -> tuple[nn.Linear, nn.Linear] | None:
    """An encoder layer's MLP as BERT, RoBERTa, ELECTRA and MiniLM have it: intermediate.dense
    (hidden -> neurons) and output.dense (neurons -> hidden); None for any other layer."""
    fc = getattr(getattr(layer, "intermediate", None), "dense", None)
    out = getattr(getattr(layer, "output", None), "dense", None)
    if isinstance(fc, nn.Linear) and isinstance(out, nn.Linear):
        return fc, out
    return None


def _narrow_bert(layer: Any, width: int, param: str, scores: torch.Tensor | None) -> None:
    found = _bert_mlp(layer)
    assert found is not None
    fc, out = found
    if scores is None:
        scores = fc.weight.pow(2).sum(1) + fc.bias.pow(2) + out.weight.pow(2).sum(0)
    index = _keep(width, fc.out_features, scores.detach(), param)
    layer.intermediate.dense = _sliced(fc, index, 0)
    layer.output.dense = _sliced(out, index, 1)


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


def random_like(model: Any) -> Any:
    """A model of `model`'s class and config (its own shapes, head width and all) from random
    init, under the global RNG as it stands."""
    config = copy.deepcopy(model.config)
    return type(model)(config).float().eval()


def from_config(model: Any, overrides: dict[str, Any], seed: int) -> Any:
    """A model of the teacher's class from its config with `overrides`, random init under
    `seed`; the vocabulary stays the teacher's (the tokenizer is)."""
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
