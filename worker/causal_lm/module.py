"""A Hugging Face causal LM as the pipeline trains and measures models: token ids `[batch,
time]` (integers, or floats holding them, as training batches carry them) in, logits `[batch,
time, vocabulary]` out, like the zoo's `gpt`. `hf` is the transformers model itself, what
generation (with its KV cache) and save_pretrained use."""

import time
from typing import Any

import torch
from torch import nn


class TokenLm(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.hf = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=tokens.long(), use_cache=False).logits


def output_size(model: Any) -> int:
    """Logits per position (the head's rows: may exceed the tokenizer's own tokens)."""
    return int(model.get_output_embeddings().weight.shape[0])


@torch.no_grad()
def sample(
    model: TokenLm, prompt: torch.Tensor, count: int, temperature: float, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """`count` tokens sampled after `prompt` (1-D) by transformers' generate with its KV cache,
    on one CPU thread under `seed` (the global RNG is left as it was); and the tokens generated
    per second."""
    hf = model.cpu().eval().hf
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            started = time.perf_counter()
            out = hf.generate(
                prompt[None],
                attention_mask=torch.ones_like(prompt)[None],
                max_new_tokens=count,
                min_new_tokens=count,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                use_cache=True,
                pad_token_id=hf.config.eos_token_id
                if isinstance(hf.config.eos_token_id, int)
                else 0,
            )
            seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    tokens = out[0, len(prompt) :]
    return tokens, len(tokens) / max(seconds, 1e-9)
