"""A Hugging Face tokenizer as the vocabulary a language-model corpus is cut into
(worker/data/tokens.py): documents packed with the end-of-text token after each, the bytes of
text each token stands for (bits per byte of the original text), and decoding for samples."""

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import numpy as np

from worker.data.tokens import token_dtype

# Documents tokenised per call of the (fast, batched) tokenizer.
BATCH = 256


@cache
def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte-level alphabet reversed: the byte each printable stand-in character is
    (byte-level BPE tokenizers, GPT-2's, Llama 3's, Qwen's, SmolLM's, spell tokens in it)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


class HfVocabulary:
    def __init__(self, tokenizer: Any, size: int, name: str) -> None:
        self.tokenizer = tokenizer
        self.size = size
        self.name = name
        self.eos = tokenizer.eos_token_id

    def encode(self, documents: Iterable[str]) -> np.ndarray:
        parts: list[np.ndarray] = []
        batch: list[str] = []
        end = [] if self.eos is None else [int(self.eos)]

        def flush() -> None:
            ids = self.tokenizer(batch, add_special_tokens=False)["input_ids"]
            parts.extend(np.asarray([*doc, *end], dtype=np.int64) for doc in ids)
            batch.clear()

        for document in documents:
            batch.append(document)
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
        tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return tokens.astype(token_dtype(self.size))

    def token_bytes(self) -> np.ndarray:
        tokenizer = self.tokenizer
        out = np.zeros(self.size, dtype=np.int64)
        count = min(len(tokenizer), self.size)
        special = set(tokenizer.all_special_ids)
        pieces = tokenizer.convert_ids_to_tokens(list(range(count)))
        byte_level = (
            type(getattr(tokenizer.backend_tokenizer, "decoder", None)).__name__ == ("ByteLevel")
            if hasattr(tokenizer, "backend_tokenizer")
            else False
        )
        table = _byte_of_char()
        for i, piece in enumerate(pieces):
            if i in special or piece is None:
                continue
            if byte_level and all(c in table for c in piece):
                out[i] = len(piece)
            else:
                text = tokenizer.decode([i], clean_up_tokenization_spaces=False)
                out[i] = len(text.encode("utf-8"))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False))
