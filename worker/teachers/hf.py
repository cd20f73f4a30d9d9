"""`hf`: an uploaded Hugging Face model directory (app/files/checkers/hf_model.py), loaded by
transformers' Auto classes from the upload's prepared files, offline (local_files_only,
HF_HUB_OFFLINE), never with remote code and from safetensors only: for a `language_model` job
a causal LM (worker/teachers/causal_lm.py), otherwise a sequence classifier that labels a text
classification dataset.

The classifier: a TextClassifier (worker/hf_classifier.py): each example's bytes are decoded
back to its text and tokenized by the model's own tokenizer; the teacher answers the
classifier's logits. It is the teacher's `module`: it can run online (DistilBERT's cosine term
reads its hidden states), a `from_teacher` student is made from its layers, and with `train`
the pipeline fine-tunes it on the labelled train split first (a base encoder saved as a
sequence classifier gets its head that way).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.store.base import sha256_of
from distillery.types.catalog import SpecError
from distillery.types.catalog.base import LANGUAGE_MODEL
from worker.causal_lm.loading import CausalLm, load_folder
from worker.causal_lm.loading import transformers as _transformers
from worker.hf_classifier import TextClassifier
from worker.stage_cost import StageCost
from worker.teachers.causal_lm import CausalLmTeacher
from worker.teachers.registry import (
    ALL_ROWS,
    TEACHER_SOURCES,
    StageRunner,
    TeacherContext,
    TeacherSource,
    median_latency_ms,
    training_cost,
)
from worker.teachers.train import TEACHER_FILE
from worker.uploads import UploadedFile

PARAM = "teacher.file_id"
BATCH = 64
# The most tokens a text is cut to (less when the model or its tokenizer takes fewer).
MAX_TOKENS = 512
WANTED = "a Hugging Face model directory (.zip of config.json, *.safetensors and tokenizer files)"


@TEACHER_SOURCES.register("hf")
def hf_teacher(context: TeacherContext) -> TeacherSource:
    """A causal LM for a language_model job, a sequence classifier otherwise."""
    if context.task.name == LANGUAGE_MODEL:
        return HfCausalLmTeacher(context)
    return HfTeacher(context)


def upload_folder(upload: UploadedFile) -> Path:
    """The model's files in one local folder (the prepared files model/<name>)."""
    files = upload.info.get("files") or {}
    if "config.json" not in files:
        raise SpecError(PARAM, f"file {upload.id} has no prepared model files")
    paths = {upload.local_path(key) for key in files.values()}
    folders = {p.parent for p in paths}
    if len(folders) != 1 or {p.name for p in paths} != set(files):
        raise SpecError(PARAM, f"file {upload.id}: its model files are not one folder")
    return folders.pop()


class HfCausalLmTeacher(CausalLmTeacher):
    name = "hf"

    def load(self) -> CausalLm:
        self.upload = self.uploaded("teacher", "hf", WANTED)
        if self.upload.info.get("task") != LANGUAGE_MODEL:
            raise SpecError(
                PARAM,
                f"file {self.upload.id} is not a causal LM (*ForCausalLM): a language_model "
                "job's teacher predicts the next token",
            )
        self.folder = upload_folder(self.upload)
        return load_folder(self.folder)

    def sha256(self) -> str:
        return self.upload.sha256

    def model_bytes(self) -> int:
        return sum((self.folder / n).stat().st_size for n in self.upload.info["weights"])


class HfTeacher(TeacherSource):
    name = "hf"
    preprocessing = "hf-tokenizer-v1"
    upload: UploadedFile
    module: TextClassifier

    def validate(self) -> None:
        self.upload = self.uploaded("teacher", "hf", WANTED)
        data = self.data
        if data.modality != "text":
            raise SpecError(
                PARAM,
                f"hf teachers label text datasets (a .jsonl of text and label); the dataset's "
                f"examples are {data.modality}",
            )
        transformers = _transformers()
        self.folder = upload_folder(self.upload)
        folder = str(self.folder)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False
            )
        except Exception as exc:
            raise SpecError(PARAM, f"transformers cannot load the tokenizer: {exc}") from None
        # Seeded like the student: a head transformers initialises (a base encoder's folder
        # saved as a classifier to be fine-tuned) starts the same on every run.
        torch.manual_seed(self.context.seed)
        try:
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False, use_safetensors=True
            )
        except Exception as exc:
            raise SpecError(PARAM, f"transformers cannot load the model: {exc}") from None
        classes = int(model.config.num_labels)
        if classes != data.num_classes:
            raise SpecError(
                PARAM,
                f"the teacher has {classes} labels; the dataset has {data.num_classes} classes",
            )
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            # Decoder models (GPT-2 style) pad a batch with their end-of-text token.
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.module = TextClassifier(model.float(), tokenizer, _max_tokens(tokenizer, model))
        self.module.eval().to(self.context.device)
        n = min(2, len(data.test))
        try:
            probe = self._run(data.test.head(n))
        except Exception as exc:
            raise SpecError(PARAM, f"the teacher fails on the dataset's texts: {exc}") from None
        if probe.shape != (n, data.num_classes):
            raise SpecError(
                PARAM,
                f"the teacher answers shape {list(probe.shape)} for {n} texts; "
                f"expected [{n}, {data.num_classes}]",
            )

    def _run(self, chunk: torch.Tensor, model: nn.Module | None = None) -> np.ndarray:
        """Logits for a chunk of examples (UTF-8 byte rows) as float32 numpy."""
        model = self.module if model is None else model
        with torch.inference_mode():
            return model(chunk).float().cpu().numpy()

    def pretrain(self, runner: StageRunner) -> None:
        """With `train`: fine-tune the classifier on the labelled train split (its head, when
        transformers initialised one, and every layer), as `train` teachers are trained."""
        settings = self.spec.get("train")
        if settings is None:
            super().pretrain(runner)
            return
        if runner.outputs.finished(self.module, "teacher"):
            return
        self.module.train()
        runner.trainer.train_with_labels(self.module, settings, "teacher")
        runner.outputs.save_output(self.module, "teacher")
        self.module.eval()

    def pretraining_cost(self) -> StageCost:
        settings = self.spec.get("train")
        return StageCost() if settings is None else training_cost(settings, self.data)

    def sha256(self) -> str:
        # A fine-tuned teacher is its weights (the soft-label key), not the upload.
        trained = self.context.workdir / TEACHER_FILE
        if self.spec.get("train") is not None and trained.exists():
            return sha256_of(trained)
        return self.upload.sha256

    def distill_logits(self, rows: slice = ALL_ROWS) -> Iterator[np.ndarray]:
        for chunk in self.data.distill.part(rows).chunks(BATCH):
            yield self._run(chunk)

    def val_logits(self) -> Iterator[torch.Tensor]:
        return (torch.from_numpy(self._run(c)) for c in self.data.val.chunks(BATCH))

    def evaluate(self) -> dict[str, Any]:
        data = self.data
        self.module.eval()
        chunks = (torch.from_numpy(self._run(c)) for c in data.test.chunks(BATCH))
        metrics = self.context.task.test_metrics(chunks, data.y_test)
        example = data.test.head(1)
        cpu = self.module.cpu()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            latency = median_latency_ms(lambda: self._run(example, cpu))
        finally:
            torch.set_num_threads(threads)
            self.module.to(self.context.device)
        return {
            "params": int(sum(p.numel() for p in self.module.parameters())),
            # The weights, as for the other sources (the zip also holds the tokenizer, and its
            # size depends on how it was compressed); a fine-tuned teacher's safetensors.
            "bytes": self._weights_bytes(),
            **metrics,
            "latency_ms_cpu": round(latency, 4),
        }

    def _weights_bytes(self) -> int:
        trained = self.context.workdir / TEACHER_FILE
        if self.spec.get("train") is not None and trained.exists():
            return trained.stat().st_size
        return sum((self.folder / n).stat().st_size for n in self.upload.info["weights"])

    def describe(self) -> dict[str, Any]:
        config = self.module.hf.config
        return {
            **super().describe(),
            "model_type": config.model_type,
            "layers": int(getattr(config, "num_hidden_layers", 0)) or None,
            "fine_tuned": self.spec.get("train") is not None,
        }


def _max_tokens(tokenizer: Any, model: Any) -> int:
    """The tokens a text is cut to: MAX_TOKENS, or fewer when the tokenizer or the model's
    position embeddings take fewer."""
    limits = [MAX_TOKENS, getattr(tokenizer, "model_max_length", MAX_TOKENS)]
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return int(min(limit for limit in limits if isinstance(limit, int) and limit > 0))
