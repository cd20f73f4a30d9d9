"""A tiny GGUF file, written the way llama.cpp's convert_hf_to_gguf.py writes a Llama: the tiny
Llama of tiny_causal_lm.py (float32 tensors renamed to GGUF's names, the query and key
projections permuted to GGUF's rotary layout) and its byte-level BPE tokenizer as
`tokenizer.ggml.*` metadata. transformers reads it back (dequantised) as the same model."""

import json
from pathlib import Path
from typing import Any

import numpy as np

from tests.worker.teachers.tiny_causal_lm import tiny_causal_lm, train_tokenizer


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """HF's rotary halves to GGUF's interleaved pairs (convert_hf_to_gguf.py's permute)."""
    rows = weights.shape[0]
    return (
        weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf(path: Path, model: Any, tokenizer: Any) -> Path:
    """`model` (a LlamaForCausalLM) and `tokenizer` (byte-level BPE) as a float32 GGUF file."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    state = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    vocab = sorted(state["vocab"].items(), key=lambda item: item[1])
    special = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types(
        [
            gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL
            for token, _ in vocab
        ]
    )
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        weights = tensor.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            weights = _permute(weights, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            weights = _permute(weights, config.num_key_value_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, name
        writer.add_tensor(gguf_name, np.ascontiguousarray(weights))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def save_tiny_gguf(path: Path, layers: int = 4, seed: int = 0) -> Path:
    """The tiny Llama of tiny_causal_lm.py as a GGUF file at `path`."""
    tokenizer = train_tokenizer()
    return write_gguf(path, tiny_causal_lm("llama", len(tokenizer), layers, seed), tokenizer)
