"""A Hugging Face sequence classifier as the pipeline trains and measures models: a text
dataset's raw examples (UTF-8 byte rows, app/files/text_examples.py) in, class logits out,
like the zoo's byte-level text models. Each batch's texts are decoded and cut into tokens by
the model's own tokenizer (padded to the batch's longest, truncated at `max_tokens`) on the
way in, so the teacher (an `hf` upload, fine-tuned by `teacher.train` or not) and a student
made from its layers (`from_teacher`: DistilBERT's recipe) train, label and evaluate through
the same loop, soft-label store and taps as every other model.

Outside PyTorch the text is tokenized before the graph: the ONNX graph (`token_graph`) takes
`input_ids` and `attention_mask` (int64, any batch and length) and answers the logits; the
manifest names the tokenizer (`preprocessing`), and onnxruntime is fed by `onnx_feed`, which
tokenizes raw rows exactly as `forward` does.

Taps (worker/kd/taps.py): `hidden`, the last layer's hidden states [batch, tokens, width], and
`attention_mask` [batch, tokens] (1.0 on real tokens): what DistilBERT's cosine term reads."""

from typing import Any

import numpy as np
import torch
from torch import nn

from app.files.text_examples import decode

INPUT_NAMES = ("input_ids", "attention_mask")
PREPROCESSING = "hf-tokenizer-v1"


class TextClassifier(nn.Module):
    def __init__(self, model: Any, tokenizer: Any, max_tokens: int) -> None:
        super().__init__()
        self.hf = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        # Identity layers whose outputs the taps keep (nothing runs through them otherwise).
        self.hidden = nn.Identity()
        self.mask = nn.Identity()

    def like(self, model: Any) -> "TextClassifier":
        """Another model (a student of this one) with the same tokenizer and length."""
        return TextClassifier(model, self.tokenizer, self.max_tokens)

    def tokens(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """input_ids and attention_mask (int64 [batch, tokens]) of byte rows."""
        texts = [decode(row) for row in rows.detach().cpu().numpy()]
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        return {name: encoded[name].long() for name in INPUT_NAMES}

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        device = next(self.hf.parameters()).device
        inputs = {k: v.to(device) for k, v in self.tokens(rows).items()}
        out = self.hf(**inputs, output_hidden_states=True)
        self.hidden(out.hidden_states[-1])
        self.mask(inputs["attention_mask"].float())
        return out.logits

    def feature_modules(self) -> dict[str, nn.Module]:
        return {"hidden": self.hidden, "attention_mask": self.mask}

    def onnx_feed(self, rows: torch.Tensor) -> dict[str, np.ndarray]:
        """What the ONNX graph is fed for byte rows (tokenized as `forward` does)."""
        return {name: value.numpy() for name, value in self.tokens(rows).items()}

    def token_graph(self) -> nn.Module:
        return TokenGraph(self.hf)

    def signature(self) -> dict[str, Any]:
        """The ONNX graph's inputs and output, as the manifest lists them."""
        inputs = [{"name": n, "dtype": "int64", "shape": [None, None]} for n in INPUT_NAMES]
        classes = int(self.hf.config.num_labels)
        return {
            "input": inputs[0],
            "inputs": inputs,
            "output": {"name": "logits", "dtype": "float32", "shape": [None, classes]},
        }

    def preprocessing(self) -> dict[str, Any]:
        return {
            "kind": PREPROCESSING,
            "text": "each example's text (UTF-8)",
            "tokenizer": "AutoTokenizer.from_pretrained(folder) of student-hf.zip",
            "call": {"padding": True, "truncation": True, "max_length": self.max_tokens},
            "feeds": list(INPUT_NAMES),
        }


class TokenGraph(nn.Module):
    """The classifier on token ids: what is exported to ONNX."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.hf = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=input_ids, attention_mask=attention_mask).logits
