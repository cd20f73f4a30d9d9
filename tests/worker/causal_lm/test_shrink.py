"""Students of the teacher's family: keeping some of its layers (with their weights, renumbered
for the KV cache), narrowing their MLPs, and building its config with overrides."""

from pathlib import Path
from typing import Any

import pytest
import torch

from distillery.types.catalog import SpecError
from tests.worker.teachers.tiny_causal_lm import FAMILIES, tiny_causal_lm
from worker.causal_lm.shrink import (
    activation_importance,
    every_other,
    from_config,
    keep_layers,
    narrow_mlp,
    prune_heads,
    prune_hidden,
)


@pytest.mark.parametrize("family", FAMILIES)
def test_keeping_every_layer_is_the_teacher_and_keeping_some_generates(family: str) -> None:
    teacher = tiny_causal_lm(family, 64, layers=4).eval()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = keep_layers(teacher, [0, 1, 2, 3])(input_ids=ids).logits
        assert torch.equal(same, teacher(input_ids=ids).logits)
        student = keep_layers(teacher, every_other(4)).eval()
        assert student.config.num_hidden_layers == 2
        assert teacher.config.num_hidden_layers == 4  # the teacher is left as it was
        # Generating with the KV cache gives what recomputing every position gives.
        cached = student.generate(ids[:1, :4], max_new_tokens=6, do_sample=False, use_cache=True)
        fresh = student.generate(ids[:1, :4], max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, fresh)
    kept = dict(student.named_parameters())
    source = dict(teacher.named_parameters())
    for name, weights in kept.items():
        for index, layer in ((0, 0), (1, 2)):
            marker = f".{index}."
            if marker in name and ("layers" in name or ".h." in name):
                assert torch.equal(weights, source[name.replace(marker, f".{layer}.")])


def test_a_layer_out_of_range_or_listed_twice_is_refused() -> None:
    teacher = tiny_causal_lm("llama", 64, layers=4)
    with pytest.raises(SpecError, match=r"layers 0 to 3; not \[4\]"):
        keep_layers(teacher, [0, 4])
    with pytest.raises(SpecError, match="listed twice"):
        keep_layers(teacher, [1, 1])


def test_a_config_student_takes_overrides_but_not_the_vocabulary() -> None:
    teacher = tiny_causal_lm("qwen2", 64, layers=4)
    student = from_config(teacher, {"num_hidden_layers": 1, "intermediate_size": 16}, seed=0)
    assert (student.config.num_hidden_layers, student.config.intermediate_size) == (1, 16)
    assert student.config.vocab_size == 64
    again = from_config(teacher, {"num_hidden_layers": 1, "intermediate_size": 16}, seed=0)
    pairs = zip(student.parameters(), again.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(SpecError, match="not a field of the teacher's config"):
        from_config(teacher, {"depth": 2}, seed=0)
    with pytest.raises(SpecError, match="the vocabulary is the teacher's"):
        from_config(teacher, {"vocab_size": 32}, seed=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_narrowed_mlps_keep_their_largest_neurons_exactly_and_reload(
    family: str, tmp_path: Path
) -> None:
    """Cutting each MLP to its `width` largest neurons is the teacher's MLP with the other
    neurons' outputs zeroed; the folder saved from it loads back as the same model."""
    from transformers import AutoModelForCausalLM

    teacher = tiny_causal_lm(family, 64, layers=2).eval()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    student = narrow_mlp(keep_layers(teacher, [0, 1]), 16).eval()
    assert sum(p.numel() for p in student.parameters()) < sum(
        p.numel() for p in teacher.parameters()
    )
    zeroed = keep_layers(teacher, [0, 1])
    for layer, narrow in zip(
        zeroed.get_submodule("transformer.h" if family == "gpt2" else "model.layers"),
        student.get_submodule("transformer.h" if family == "gpt2" else "model.layers"),
        strict=True,
    ):
        with torch.no_grad():
            if family == "gpt2":
                weights = layer.mlp.c_fc.weight
                scores = weights.pow(2).sum(0) + layer.mlp.c_fc.bias.pow(2)
                scores += layer.mlp.c_proj.weight.pow(2).sum(1)
                dropped = scores.argsort()[: weights.shape[1] - 16]
                layer.mlp.c_proj.weight[dropped] = 0
                assert narrow.mlp.c_fc.weight.shape == (32, 16)
            else:
                mlp = layer.mlp
                scores = mlp.gate_proj.weight.pow(2).sum(1) + mlp.up_proj.weight.pow(2).sum(1)
                scores += mlp.down_proj.weight.pow(2).sum(0)
                dropped = scores.argsort()[: len(scores) - 16]
                mlp.down_proj.weight[:, dropped] = 0
                assert narrow.mlp.down_proj.weight.shape == (32, 16)
    with torch.no_grad():
        expected = zeroed(input_ids=ids).logits
        got = student(input_ids=ids).logits
        assert torch.allclose(got, expected, atol=1e-5)
        student.save_pretrained(tmp_path / "student")
        again = AutoModelForCausalLM.from_pretrained(tmp_path / "student").eval()
        assert torch.equal(again(input_ids=ids).logits, got)


def test_a_width_not_below_the_teachers_is_refused() -> None:
    teacher = tiny_causal_lm("llama", 64, layers=2)
    with pytest.raises(SpecError, match="have 64 neurons; keep 1 to 63"):
        narrow_mlp(keep_layers(teacher, [0]), 64)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_pruned_heads_keep_each_groups_largest_exactly_and_reload(
    family: str, tmp_path: Path
) -> None:
    """Keeping 2 of 4 query heads (2 key/value heads: one query head of each pair) is the
    teacher with the other heads' outputs zeroed; the folder saved from it loads back as the
    same model, head width and all."""
    teacher = tiny_causal_lm(family, 64, layers=2).eval()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(2))
    student = prune_heads(keep_layers(teacher, [0, 1]), 2).eval()
    assert (student.config.num_attention_heads, student.config.head_dim) == (2, 8)
    zeroed = keep_layers(teacher, [0, 1])
    for layer, pruned in zip(zeroed.model.layers, student.model.layers, strict=True):
        q, o = layer.self_attn.q_proj.weight, layer.self_attn.o_proj.weight
        scores = q.view(4, -1).pow(2).sum(1) + o.view(32, 4, 8).pow(2).sum((0, 2))
        # Heads 0 and 1 share key/value head 0, heads 2 and 3 share head 1.
        dropped = [pair[int(scores[pair].argmax()) ^ 1] for pair in ([0, 1], [2, 3])]
        with torch.no_grad():
            for head in dropped:
                o[:, head * 8 : (head + 1) * 8] = 0
        assert pruned.self_attn.q_proj.weight.shape == (16, 32)
        assert pruned.self_attn.o_proj.weight.shape == (32, 16)
    got = generates_and_reloads(student, ids, tmp_path)
    with torch.no_grad():
        assert torch.allclose(got, zeroed(input_ids=ids).logits, atol=1e-5)


def generates_and_reloads(student: Any, ids: torch.Tensor, tmp_path: Path) -> torch.Tensor:
    """The student's logits for `ids`, after checking that generating with the KV cache gives
    what recomputing every position gives, and that its saved folder loads back the same."""
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        got = student(input_ids=ids).logits
        cached = student.generate(ids[:1, :4], max_new_tokens=6, do_sample=False, use_cache=True)
        fresh = student.generate(ids[:1, :4], max_new_tokens=6, do_sample=False, use_cache=False)
        assert torch.equal(cached, fresh)
        student.save_pretrained(tmp_path / "student")
        again = AutoModelForCausalLM.from_pretrained(tmp_path / "student").eval()
        assert torch.equal(again(input_ids=ids).logits, got)
    return got


def test_heads_not_a_multiple_of_the_key_value_heads_or_gpt2s_are_refused() -> None:
    teacher = tiny_causal_lm("llama", 64, layers=2)
    with pytest.raises(SpecError, match="4 attention heads sharing 2 key/value heads"):
        prune_heads(keep_layers(teacher, [0]), 3)
    with pytest.raises(SpecError, match="keep a multiple of 2 below 4"):
        prune_heads(keep_layers(teacher, [0]), 4)
    with pytest.raises(SpecError, match="GPT2LMHeadModel: its attention is not of a kind"):
        prune_heads(tiny_causal_lm("gpt2", 64, layers=2), 2)


@pytest.mark.parametrize(("family", "tied"), [("llama", True), ("qwen2", False)])
def test_a_narrower_hidden_size_keeps_the_largest_channels_of_every_matrix_and_reloads(
    family: str, tied: bool, tmp_path: Path
) -> None:
    """Cutting the hidden size from 32 to 24 keeps the same 24 channels in the embeddings,
    the head, every projection and every norm, ties the head to the embeddings where the
    teacher did, and saves a folder that loads back as the same model and generates."""
    teacher = tiny_causal_lm(family, 64, layers=2).eval()
    if tied:
        teacher.config.tie_word_embeddings = True
        teacher.lm_head.weight = teacher.model.embed_tokens.weight
    student = prune_hidden(keep_layers(teacher, [0, 1]), 24).eval()
    assert (student.config.hidden_size, student.config.head_dim) == (24, 8)
    kept = student.model.norm.weight.shape
    assert kept == (24,)
    embed = teacher.model.embed_tokens.weight
    index = [
        c
        for c in range(32)
        if any(torch.equal(embed[:, c], e) for e in student.model.embed_tokens.weight.T)
    ]
    assert len(index) == 24
    layer, source = student.model.layers[1], teacher.model.layers[1]
    assert torch.equal(layer.self_attn.q_proj.weight, source.self_attn.q_proj.weight[:, index])
    assert torch.equal(layer.mlp.down_proj.weight, source.mlp.down_proj.weight[index])
    assert torch.equal(layer.input_layernorm.weight, source.input_layernorm.weight[index])
    assert (student.lm_head.weight is student.model.embed_tokens.weight) == tied
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(3))
    generates_and_reloads(student, ids, tmp_path)


def test_a_hidden_size_not_below_the_teachers_or_gpt2s_is_refused() -> None:
    teacher = tiny_causal_lm("llama", 64, layers=2)
    with pytest.raises(SpecError, match="hidden size is 32; keep 1 to 31"):
        prune_hidden(keep_layers(teacher, [0]), 32)
    with pytest.raises(SpecError, match="GPT2LMHeadModel: its layers are not of a kind"):
        prune_hidden(tiny_causal_lm("gpt2", 64, layers=2), 16)


def test_activation_importance_drops_what_never_fires_however_large_its_weights() -> None:
    """A neuron whose up projection is zero never fires and a hidden channel nothing writes
    stays zero: by weight magnitude both are kept (their other weights are the largest), by
    activation (Minitron) both are dropped. Heads are kept by their measured output norms."""
    teacher = tiny_causal_lm("llama", 64, layers=2).eval()
    tokens = torch.randint(0, 64, (6, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mlp = teacher.model.layers[0].mlp
        mlp.up_proj.weight[5] = 0
        mlp.gate_proj.weight[5] = 10
        mlp.down_proj.weight[:, 5] = 10
        teacher.model.embed_tokens.weight[:, 7] = 0
        for layer in teacher.model.layers:
            layer.self_attn.o_proj.weight[7] = 0
            layer.mlp.down_proj.weight[7] = 0
            layer.self_attn.q_proj.weight[:, 7] = 10
            layer.mlp.up_proj.weight[:, 7] = 10

    def dead_neuron_kept(student: Any) -> bool:
        return bool((student.model.layers[0].mlp.gate_proj.weight == 10).all(1).any())

    def dead_channel_kept(student: Any) -> bool:
        return bool((student.model.layers[0].self_attn.q_proj.weight == 10).all(0).any())

    by_weights = prune_hidden(narrow_mlp(keep_layers(teacher, [0, 1]), 16), 16)
    assert dead_neuron_kept(by_weights) and dead_channel_kept(by_weights)
    student = keep_layers(teacher, [0, 1])
    found = activation_importance(student, tokens, batch=4)
    assert found.neurons is not None and found.heads is not None and found.hidden is not None
    assert [len(n) for n in found.neurons] == [64, 64] and len(found.hidden) == 32
    assert float(found.neurons[0][5]) == 0 and float(found.hidden[7]) == 0
    heads = prune_heads(keep_layers(teacher, [0, 1]), 2, scores=found.heads)
    for layer, pruned, scores in zip(
        teacher.model.layers, heads.model.layers, found.heads, strict=True
    ):
        # Per key/value group (heads 0-1, 2-3), the head with the larger measured output.
        kept = [pair[int(scores[pair].argmax())] for pair in ([0, 1], [2, 3])]
        rows = torch.cat([torch.arange(h * 8, (h + 1) * 8) for h in kept])
        assert torch.equal(pruned.self_attn.q_proj.weight, layer.self_attn.q_proj.weight[rows])
    narrow_mlp(student, 16, scores=found.neurons)
    prune_heads(student, 2, scores=found.heads)
    prune_hidden(student, 16, scores=found.hidden)
    assert not dead_neuron_kept(student) and not dead_channel_kept(student)


def test_a_bert_classifiers_mlps_are_narrowed_exactly_and_reload(tmp_path: Path) -> None:
    """An encoder's MLP (BERT's intermediate.dense -> output.dense) cut to its largest
    neurons is the teacher's with the others' outputs zeroed; the saved folder reloads."""
    from transformers import AutoModelForSequenceClassification, BertConfig

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    teacher = AutoModelForSequenceClassification.from_config(config).eval()
    student = narrow_mlp(keep_layers(teacher, every_other(4)), 8).eval()
    assert student.config.intermediate_size == 8
    zeroed = keep_layers(teacher, [0, 2])
    for layer, narrow in zip(zeroed.bert.encoder.layer, student.bert.encoder.layer, strict=True):
        fc, out = layer.intermediate.dense, layer.output.dense
        scores = fc.weight.pow(2).sum(1) + fc.bias.pow(2) + out.weight.pow(2).sum(0)
        with torch.no_grad():
            out.weight[:, scores.argsort()[:24]] = 0
        assert narrow.intermediate.dense.weight.shape == (8, 16)
        assert narrow.output.dense.weight.shape == (16, 8)
    ids = torch.randint(0, 40, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = student(input_ids=ids).logits
        assert torch.allclose(got, zeroed(input_ids=ids).logits, atol=1e-5)
        student.save_pretrained(tmp_path / "student")
        again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
        assert torch.equal(again(input_ids=ids).logits, got)
    with pytest.raises(SpecError, match="attention is not of a kind cut here"):
        prune_heads(keep_layers(teacher, [0]), 1)
