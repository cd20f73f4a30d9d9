"""Byte-level text classifiers: `text_transformer` and `text_cnn`.

Both take a text as its UTF-8 bytes padded with byte 0 (app/files/text_examples.py), `[batch,
length]` (uint8 or int64, or floats holding byte values as training batches carry them), and
give logits `[batch, classes]`. The padding is masked: it changes neither the attention nor the
pooling, so a text gives the same logits whatever the padded length. An empty text keeps its
first position (the model still answers).
"""

import torch
from torch import nn

from distillery.types.catalog.models import TextCnnParams, TextTransformerParams
from worker.models.gpt import Block, gpt_init
from worker.models.registry import MODELS, InputMismatch

VOCAB = 256  # bytes
PAD = 0


def kept_positions(tokens: torch.Tensor) -> torch.Tensor:
    """bool `[batch, length]`: the text's bytes (not the padding), and always position 0."""
    keep = tokens != PAD
    first = torch.zeros_like(keep)
    first[:, 0] = True
    return keep | first


class TextTransformer(nn.Module):
    def __init__(self, params: TextTransformerParams, length: int, num_classes: int) -> None:
        super().__init__()
        self.token = nn.Embedding(VOCAB, params.dim)
        self.position = nn.Embedding(length, params.dim)
        self.blocks = nn.ModuleList(
            Block(params.dim, params.heads, causal=False) for _ in range(params.layers)
        )
        self.ln = nn.LayerNorm(params.dim)
        self.head = nn.Linear(params.dim, num_classes)
        self.apply(gpt_init)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long()
        keep = kept_positions(tokens)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        mask = keep[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask)
        weights = keep.unsqueeze(-1).to(x.dtype)
        pooled = (self.ln(x) * weights).sum(1) / weights.sum(1)
        return self.head(pooled)


class TextCnn(nn.Module):
    def __init__(self, params: TextCnnParams, num_classes: int) -> None:
        super().__init__()
        self.token = nn.Embedding(VOCAB, params.dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(params.dim, params.channels, k, padding=k // 2) for k in params.kernels
        )
        self.head = nn.Linear(params.channels * len(params.kernels), num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long()
        keep = kept_positions(tokens)
        x = (self.token(tokens) * keep.unsqueeze(-1)).transpose(1, 2)  # [batch, dim, length]
        masked_out = ~keep.unsqueeze(1)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))[..., : tokens.shape[1]]  # even kernels give one extra
            pooled.append(h.masked_fill(masked_out, float("-inf")).amax(-1))
        return self.head(torch.cat(pooled, 1))


def _length(arch: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1:
        raise InputMismatch(f"{arch} takes texts as bytes (length,), got inputs {input_shape}")
    return input_shape[0]


@MODELS.register("text_transformer")
def build_text_transformer(
    params: TextTransformerParams, input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    return TextTransformer(params, _length("text_transformer", input_shape), num_classes)


@MODELS.register("text_cnn")
def build_text_cnn(
    params: TextCnnParams, input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    _length("text_cnn", input_shape)
    return TextCnn(params, num_classes)
