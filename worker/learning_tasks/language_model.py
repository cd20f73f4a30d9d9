"""`language_model`: next-token prediction. Examples are windows of bytes (worker/data/text.py),
or of a causal-LM teacher's tokens (worker/data/tokens.py), labels the next token at each
position; a model maps tokens `[batch, time]` to logits `[batch, time, vocabulary]` (256 for
bytes). Losses and metrics are per token: distillation methods see one row per position, so
`kd` is Hinton's KD per token (forward KL with T). Bits per byte are of the original text
whatever the tokens, so byte models and models of any tokenizer compare."""

import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from distillery.types.catalog import MODELS as CATALOG_MODELS
from worker.causal_lm.module import TokenLm, sample
from worker.data import PreparedData
from worker.kd.losses import UNLABELLED
from worker.learning_tasks.registry import TASKS, Normalisation, SetSize, Task
from worker.models import MODELS, Tokens

TOKENS = "tokens"
LOGITS = "logits"
EVAL_BATCH = 64  # windows per evaluation forward: 64 x 256 positions x 256 logits in float32
PROMPT_BYTES = 32  # the report's samples continue the first test window's first bytes
SAMPLE_BYTES = 300
SAMPLE_TEMPERATURE = 0.8
PROMPT_TOKENS = 16  # a tokenizer's tokens: its first tokens, then as many new ones
SAMPLE_TOKENS = 64
# Training bytes under which the diagnosis calls the text too small for distillation to pay: a
# heuristic, about the size of tiny-shakespeare (1.1 MB), the smallest corpus byte-level models
# are commonly trained on; under it a student overfits its text before a teacher's soft labels
# can add much.
ENOUGH_BYTES = 1_000_000


@TASKS.register("language_model")
class LanguageModel(Task):
    name = "language_model"
    dynamic_time = True
    metrics = ("loss", "perplexity", "bits_per_byte")
    eval_batch = EVAL_BATCH

    def __init__(self) -> None:
        # The text's bytes each token id stands for (None: the tokens are bytes).
        self.token_bytes: torch.Tensor | None = None
        self.eval_batch = EVAL_BATCH

    def prepared(self, data: PreparedData) -> None:
        vocabulary = data.vocabulary
        if vocabulary is None:
            return
        self.token_bytes = torch.from_numpy(vocabulary.token_bytes())
        # Windows per forward when measuring: about 64 MB of float32 logits.
        per_window = data.input_shape[0] * data.num_classes * 4
        self.eval_batch = max(1, (64 * 1024**2) // per_window)

    def text_bytes(self, labels: torch.Tensor) -> int:
        """The bytes of text the labelled positions of `labels` predict."""
        labelled = labels[labels != UNLABELLED]
        if self.token_bytes is None:
            return int(labelled.numel())
        return int(self.token_bytes[labelled.cpu()].sum())

    def build_model(
        self,
        arch: str,
        params: dict[str, Any],
        data: PreparedData,
        normalisation: Normalisation | None = None,
    ) -> nn.Module:
        """Token ids are not normalised (`normalisation` is ignored)."""
        typed = CATALOG_MODELS[arch].params.model_validate(params)
        return Tokens(MODELS.get(arch)(typed, data.input_shape, data.num_classes))

    def positions(self, data: PreparedData) -> int:
        return data.input_shape[0]

    def rows(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits.flatten(0, -2), labels.flatten()

    def hard_label_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        assert mix is None, "language_model takes no mixing augmentation"
        logits, labels = self.rows(logits, labels)
        return nn.functional.cross_entropy(logits, labels, ignore_index=UNLABELLED)

    def measure_logits(self, chunks: Iterable[torch.Tensor], y: torch.Tensor) -> dict[str, float]:
        """Mean cross-entropy per predicted token (nats), its perplexity, and bits per byte of
        the text predicted (the summed loss over the bytes the tokens stand for)."""
        total, count, text, seen = 0.0, 0, 0, 0
        for logits in chunks:
            labels = y[seen : seen + len(logits)].to(logits.device)
            flat_logits, flat_labels = self.rows(logits, labels)
            total += nn.functional.cross_entropy(
                flat_logits.float(), flat_labels, ignore_index=UNLABELLED, reduction="sum"
            ).item()
            count += int((flat_labels != UNLABELLED).sum())
            text += self.text_bytes(flat_labels)
            seen += len(logits)
        loss = total / max(count, 1)
        return {
            "loss": loss,
            "perplexity": math.exp(loss),
            "bits_per_byte": total / max(text, 1) / math.log(2),
        }

    def example(self, data: PreparedData, n: int) -> torch.Tensor:
        return data.test.head(n).long()

    def compare(
        self, teacher: dict[str, Any], student: dict[str, Any], baseline: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Bits per byte: the student's excess over the teacher, and what distillation saved
        against the baseline (positive: the distilled student predicts the text better)."""
        s = student["test_bits_per_byte"]
        t = teacher.get("test_bits_per_byte")
        return {
            "bits_per_byte_over_teacher": round(s - t, 4) if t is not None else None,
            "kd_gain": round(baseline["test_bits_per_byte"] - s, 4) if baseline else None,
            "kd_gain_unit": "bits_per_byte",
        }

    def distill_set_size(self, data: PreparedData) -> SetSize:
        """Bytes of text predicted: windows of `context` tokens, one target each (they do not
        overlap), as the bytes they stand for."""
        return SetSize(float(self.text_bytes(data.y_distill)), "bytes", ENOUGH_BYTES)

    def epoch_values(self, values: dict[str, float], data: PreparedData) -> dict[str, float]:
        time = data.input_shape[0]
        return {**values, "tokens_per_second": values["samples_per_second"] * time}

    def samples(self, models: dict[str, nn.Module], data: PreparedData) -> dict[str, Any]:
        """Each model continues the same prompt (the first test window's first bytes) for
        SAMPLE_BYTES bytes, sampled at T=0.8 with the same seed, on one CPU thread; with the
        bytes per second it generated them at. Models of a tokenizer's tokens continue its
        first PROMPT_TOKENS tokens for SAMPLE_TOKENS tokens, with transformers' KV cache."""
        vocabulary = data.vocabulary
        if vocabulary is not None:
            prompt = data.test.head(1)[0, :PROMPT_TOKENS].long()
            made: dict[str, Any] = {
                "prompt": vocabulary.decode(prompt.tolist()),
                "temperature": SAMPLE_TEMPERATURE,
            }
            for name, model in models.items():
                assert isinstance(model, TokenLm), f"{name} is no Hugging Face causal LM"
                tokens, per_second = sample(model, prompt, SAMPLE_TOKENS, SAMPLE_TEMPERATURE)
                made[name] = {
                    "text": vocabulary.decode(tokens.tolist()),
                    "tokens_per_second_cpu": round(per_second, 1),
                    "kv_cache": True,
                }
            return made
        context = data.input_shape[0]
        prompt = data.test.head(1)[0, : min(PROMPT_BYTES, context - 1)].long()
        out: dict[str, Any] = {"prompt": _text(prompt), "temperature": SAMPLE_TEMPERATURE}
        for name, model in models.items():
            tokens, per_second = generate(model, prompt, SAMPLE_BYTES, context)
            out[name] = {"text": _text(tokens), "tokens_per_second_cpu": round(per_second, 1)}
        return out

    def preprocessing(self, data: PreparedData) -> dict[str, Any]:
        if data.vocabulary is not None:
            return {
                "baked_into_graph": False,
                "note": "pass text as its token ids from the model's tokenizer (in the hf "
                "folder: AutoTokenizer.from_pretrained), int64, at most the model's context "
                f"per sequence ({data.input_shape[0]} in training); the logits at each position "
                "predict the next token",
            }
        return {
            "baked_into_graph": True,
            "note": "pass text as its UTF-8 bytes, each an int64 token 0..255, at most the "
            f"model's context per sequence ({data.input_shape[0]} in training); the logits at "
            "each position predict the next byte",
        }

    def signature(self, data: PreparedData) -> dict[str, Any]:
        time = data.input_shape[0]
        return {
            "input": {"name": TOKENS, "shape": [None, time], "dtype": "int64"},
            "output": {"name": LOGITS, "shape": [None, time, data.num_classes]},
        }


@torch.no_grad()
def generate(
    model: nn.Module, prompt: torch.Tensor, count: int, context: int, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """`count` bytes sampled after `prompt` (1-D tokens), reading at most `context` bytes back;
    and the bytes generated per second (one CPU thread, no cache: each step reruns the window)."""
    model = model.cpu().eval()
    generator = torch.Generator().manual_seed(seed)
    tokens = prompt.clone()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        for _ in range(count):
            logits = model(tokens[-context:].unsqueeze(0))[0, -1]
            probs = torch.softmax(logits.float() / SAMPLE_TEMPERATURE, dim=-1)
            next_token = torch.multinomial(probs, 1, generator=generator)
            tokens = torch.cat([tokens, next_token])
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    return tokens[len(prompt) :], count / max(seconds, 1e-9)


def _text(tokens: torch.Tensor) -> str:
    return bytes(tokens.tolist()).decode("utf-8", errors="replace")
