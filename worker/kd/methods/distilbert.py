"""`distilbert`: DistilBERT's loss (Sanh et al. 2019) for a student made from its teacher's
layers (`student.source: from_teacher` of an `hf` sequence classifier): the KD + CE terms of
DESIGN section 5 plus the cosine term that aligns the directions of the student's and the
teacher's last hidden states, over the real (unpadded) tokens:

    L = kd + ce + cos_weight * mean over tokens i of (1 - cos(h_s,i, h_t,i))

(DistilBERT's CosineEmbeddingLoss with target 1; its masked-LM term has no place in
fine-tuning on labels). Both models read the batch through the same tokenizer, so their
tokens line up; the hidden sizes must match (from_teacher keeps the teacher's width)."""

import torch
import torch.nn.functional as F

from worker.kd.methods.base import METHODS, Method, Outputs

HIDDEN, MASK = "hidden", "attention_mask"


def cosine_term(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos over the tokens where `mask` is 1 ([batch, tokens, width] states)."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"the student's hidden states have shape {tuple(student.shape[1:])}, the "
            f"teacher's {tuple(teacher.shape[1:])}: the cosine term needs the same width"
        )
    real = mask.bool()
    cos = F.cosine_similarity(student[real], teacher[real].to(student.dtype), dim=-1)
    return (1 - cos).mean()


@METHODS.register("distilbert")
class DistilBert(Method):
    def student_layers(self) -> list[str]:
        return [HIDDEN, MASK]

    def teacher_layers(self) -> list[str]:
        return [HIDDEN]

    def build(self, student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> None:
        cosine_term(student[HIDDEN], teacher[HIDDEN], student[MASK])  # fails early if unaligned

    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        features = student.features
        cosine = cosine_term(features[HIDDEN], teacher.features[HIDDEN], features[MASK])
        weight = self.method_params["cos_weight"]
        return self.hinton(student, teacher, labels, temperature) + weight * cosine
