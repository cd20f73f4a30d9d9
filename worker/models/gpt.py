"""`gpt`: a byte-level GPT (nanoGPT-style): token and position embeddings, pre-norm blocks of
causal self-attention (`scaled_dot_product_attention`) and a 4x MLP, a final LayerNorm and a
head tied to the token embedding (it reads the embedding's weights: one tensor, saved once).
Takes tokens `[batch, time]` (int64, or floats holding byte values, as training batches carry
them), gives logits `[batch, time, vocab]`."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from distillery.types.catalog.models import GptParams
from worker.models.registry import MODELS, InputMismatch

VOCAB = 256  # bytes


class SelfAttention(nn.Module):
    """Causal self-attention, or (`causal=False`) attention to the positions `mask` keeps
    (bool `[batch, 1, 1, time]`, True: attend)."""

    def __init__(self, dim: int, heads: int, causal: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, time, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        shape = (batch, time, self.heads, dim // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        return self.proj(y.transpose(1, 2).reshape(batch, time, dim))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, causal: bool = True) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, causal)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


def gpt_init(module: nn.Module) -> None:
    """GPT-2's initialisation of linear and embedding layers."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class Gpt(nn.Module):
    def __init__(self, params: GptParams, vocab: int = VOCAB) -> None:
        super().__init__()
        self.context = params.context
        self.token = nn.Embedding(vocab, params.dim)
        self.position = nn.Embedding(params.context, params.dim)
        self.blocks = nn.ModuleList(Block(params.dim, params.heads) for _ in range(params.layers))
        self.ln = nn.LayerNorm(params.dim)
        self.apply(gpt_init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                # GPT-2's scaled init of the residual projections.
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * params.layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long()
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        # The head is the token embedding, transposed (Press & Wolf 2017), as in GPT-2.
        return F.linear(self.ln(x), self.token.weight)

    def feature_modules(self) -> dict[str, nn.Module]:
        return {f"block{i + 1}": block for i, block in enumerate(self.blocks)}


@MODELS.register("gpt")
def build_gpt(params: GptParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 1:
        raise InputMismatch(f"gpt takes token sequences (time,), got inputs of shape {input_shape}")
    if input_shape[0] > params.context:
        raise InputMismatch(
            f"gpt with context {params.context} cannot read windows of {input_shape[0]} tokens"
        )
    if num_classes != VOCAB:
        raise InputMismatch(f"gpt is byte-level: a vocabulary of {VOCAB}, not {num_classes}")
    return Gpt(params, num_classes)
