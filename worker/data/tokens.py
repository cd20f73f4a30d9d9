"""A vocabulary a language-model corpus is cut into when the teacher brings its own tokenizer
(a Hugging Face causal LM): what the dataset loaders and the `language_model` task need of it,
without importing the library that implements it (worker/causal_lm/vocabulary.py)."""

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np


class Vocabulary(Protocol):
    # What the corpus's description names it by (the tokenizer's name or folder).
    name: str
    # Logits per position: the model's vocabulary (may exceed the tokenizer's own tokens).
    size: int

    def encode(self, documents: Iterable[str]) -> np.ndarray:
        """The documents' tokens, packed in order, the end-of-text token after each."""
        ...

    def token_bytes(self) -> np.ndarray:
        """(size,) int64: the UTF-8 bytes of text each token id stands for (0 for special
        tokens), so bits per byte of the original text can be measured."""
        ...

    def decode(self, ids: Sequence[int]) -> str: ...


def token_dtype(size: int) -> np.dtype:
    """The smallest unsigned integer that holds every token id."""
    return np.dtype(np.uint16 if size <= 1 << 16 else np.uint32)
