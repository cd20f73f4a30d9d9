"""Tiny Hugging Face causal LMs (Llama-, GPT-2- and Qwen2-like), built offline with
transformers, with a byte-level BPE tokenizer trained here on Python source, and saved with
save_pretrained (safetensors): what a user zips and uploads as an `hf` language-model teacher."""

from pathlib import Path
from typing import Any

from worker.data.text import stdlib_text

FAMILIES = ("llama", "gpt2", "qwen2")
END = "<|endoftext|>"
POSITIONS = 128


def train_tokenizer(vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer (GPT-2's kind) trained on 200 kB of the standard library."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = stdlib_text(200_000).decode("utf-8", errors="replace")
    tokenizer.train_from_iterator(text.splitlines(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=END,
        bos_token=END,
        unk_token=END,
        model_max_length=POSITIONS,
    )


def tiny_causal_lm(family: str, vocab_size: int, layers: int = 4, seed: int = 0) -> Any:
    import torch
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(seed)
    common = {"vocab_size": vocab_size, "bos_token_id": 0, "eos_token_id": 0}
    if family == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(n_embd=32, n_layer=layers, n_head=4, n_positions=POSITIONS, **common)
        )
    shapes = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": POSITIONS,
        **common,
    }
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(**shapes))
    assert family == "qwen2", family
    return Qwen2ForCausalLM(Qwen2Config(**shapes))


def save_tiny_causal_lm(
    folder: Path, family: str = "llama", layers: int = 4, seed: int = 0
) -> Path:
    """A tiny causal LM of `family` and its tokenizer, saved in `folder`."""
    tokenizer = train_tokenizer()
    model = tiny_causal_lm(family, len(tokenizer), layers, seed)
    model.eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
