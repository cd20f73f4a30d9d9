"""What every causal-LM teacher does, whichever file it came in (`hf`: a save_pretrained
folder; `gguf`): it brings its tokenizer, which the language-model corpus is cut into; it
labels each window's every position with its next-token logits (the soft-label store keeps
their top k); it is measured per token and in bits per byte of the original text. No PyTorch
module is lent (`module` stays None): its labels are stored once, then read."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from distillery.types.catalog import SpecError
from worker.causal_lm.loading import CausalLm, LoadError
from worker.causal_lm.module import TokenLm, output_size
from worker.causal_lm.vocabulary import HfVocabulary
from worker.teachers.registry import ALL_ROWS, FILE_PARAM, TeacherSource, median_latency_ms

# Logits per forward when labelling, at most: windows x positions x vocabulary x 4 bytes.
CHUNK_BYTES = 256 * 1024**2
LATENCY_RUNS = 10


class CausalLmTeacher(TeacherSource):
    preprocessing = "hf-causal-lm-tokens-v1"

    def load(self) -> CausalLm:
        """The model and tokenizer from the spec's file (LoadError when transformers fails)."""
        raise NotImplementedError

    def model_bytes(self) -> int:
        """What the teacher's weights take on disk (the report's size)."""
        raise NotImplementedError

    def vocabulary(self) -> HfVocabulary:
        try:
            lm = self.load()
        except LoadError as exc:
            raise SpecError(FILE_PARAM, str(exc)) from None
        lm.model.to(self.context.device)
        self.causal_lm = lm
        self.lm = TokenLm(lm.model).eval()
        self.vocab = HfVocabulary(lm.tokenizer, output_size(lm.model), lm.files)
        return self.vocab

    def validate(self) -> None:
        data = self.data
        if data.vocabulary is not self.vocab:
            raise SpecError(
                "dataset.name",
                f"{self.context.dataset_name} is not a text corpus a causal LM can read",
            )
        context = data.input_shape[0]
        positions = getattr(self.lm.hf.config, "max_position_embeddings", None)
        if isinstance(positions, int) and context > positions:
            raise SpecError(
                "dataset.options.context",
                f"windows of {context} tokens; the teacher reads at most {positions}",
            )
        try:
            probe = self._run(data.test.head(1))
        except Exception as exc:
            raise SpecError(FILE_PARAM, f"the teacher fails on the corpus: {exc}") from None
        if probe.shape != (1, context, data.num_classes):
            raise SpecError(
                FILE_PARAM,
                f"the teacher answers shape {list(probe.shape)} for one window; expected "
                f"[1, {context}, {data.num_classes}]",
            )

    def _run(self, chunk: torch.Tensor, model: TokenLm | None = None) -> torch.Tensor:
        """Logits for a chunk of windows (token ids), float32 on the CPU."""
        model = self.lm if model is None else model
        device = next(model.parameters()).device
        with torch.inference_mode():
            return model(chunk.to(device)).float().cpu()

    def _chunk(self) -> int:
        """Windows per forward, so one chunk's logits stay under CHUNK_BYTES."""
        per_window = self.data.input_shape[0] * self.data.num_classes * 4
        return max(1, CHUNK_BYTES // per_window)

    def distill_logits(self, rows: slice = ALL_ROWS) -> Iterator[np.ndarray | torch.Tensor]:
        for chunk in self.data.distill.part(rows).chunks(self._chunk()):
            yield self._run(chunk)

    def val_logits(self) -> Iterator[torch.Tensor]:
        return (self._run(c) for c in self.data.val.chunks(self._chunk()))

    def evaluate(self) -> dict[str, Any]:
        data = self.data
        chunks = (self._run(c) for c in data.test.chunks(self._chunk()))
        metrics = self.context.task.test_metrics(chunks, data.y_test)
        example = data.test.head(1).long()
        model = self.lm.cpu()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            latency = median_latency_ms(
                lambda: self._run(example, model), runs=LATENCY_RUNS, warmup=1
            )
        finally:
            torch.set_num_threads(threads)
            self.lm.to(self.context.device)
        return {
            "params": int(sum(p.numel() for p in self.lm.parameters())),
            "bytes": self.model_bytes(),
            **metrics,
            "latency_ms_cpu": round(latency, 4),
        }

    def describe(self) -> dict[str, Any]:
        config = self.lm.hf.config
        return {
            **super().describe(),
            "model_type": config.model_type,
            "layers": int(config.num_hidden_layers),
            "vocabulary": self.vocab.size,
        }
