"""`from_teacher`: the teacher's causal LM with only the layers `layers` names, each initialised
from the teacher's layer, their MLPs cut to `intermediate` neurons, their attention to `heads`
heads and the hidden size to `hidden` channels when given (worker/causal_lm/shrink.py); the
teacher's embeddings, final norm, head and tokenizer. `random_init_baseline` asks for the same
architecture from random init as a second baseline."""

from typing import Any

from torch import nn

from worker.causal_lm.module import TokenLm
from worker.causal_lm.shrink import (
    every_other,
    keep_layers,
    layer_count,
    narrow_mlp,
    prune_heads,
    prune_hidden,
    random_like,
)
from worker.students.registry import STUDENT_SOURCES, StudentSource


@STUDENT_SOURCES.register("from_teacher")
class FromTeacherStudent(StudentSource):
    name = "from_teacher"

    def layers(self) -> list[int]:
        layers = self.spec["layers"]
        if layers == "every_other":
            return every_other(layer_count(self.teacher_lm().model))
        return list(layers)

    def build(self) -> nn.Module:
        model = keep_layers(self.teacher_lm().model, self.layers())
        width = self.spec.get("intermediate")
        if width is not None:
            narrow_mlp(model, width)
        heads = self.spec.get("heads")
        if heads is not None:
            prune_heads(model, heads)
        hidden = self.spec.get("hidden")
        if hidden is not None:
            prune_hidden(model, hidden)
        return TokenLm(model.float())

    def random_init(self) -> nn.Module | None:
        if not self.spec.get("random_init_baseline"):
            return None
        return TokenLm(random_like(self.build().hf))

    def describe(self) -> dict[str, Any]:
        teacher = self.teacher_lm().model
        return {
            "source": self.name,
            "model_type": teacher.config.model_type,
            "layers": self.layers(),
            "teacher_layers": layer_count(teacher),
            "intermediate": self.spec.get("intermediate"),
            "heads": self.spec.get("heads"),
            "hidden": self.spec.get("hidden"),
            "random_init_baseline": bool(self.spec.get("random_init_baseline")),
        }
