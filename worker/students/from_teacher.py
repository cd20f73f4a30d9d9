"""`from_teacher`: the teacher's causal LM with only the layers `layers` names, each initialised
from the teacher's layer, their MLPs cut to `intermediate` neurons, their attention to `heads`
heads and the hidden size to `hidden` channels when given (worker/causal_lm/shrink.py), what
is kept chosen by weight magnitude or, with `importance: "activation"`, by the activations of
the first training windows; the teacher's embeddings, final norm, head and tokenizer.
`random_init_baseline` asks for the same architecture from random init as a second baseline."""

from typing import Any

from torch import nn

from worker.causal_lm.module import TokenLm
from worker.causal_lm.shrink import (
    Activations,
    activation_importance,
    every_other,
    keep_layers,
    layer_count,
    narrow_mlp,
    prune_heads,
    prune_hidden,
    random_like,
)
from worker.students.registry import STUDENT_SOURCES, StudentSource

# Training windows the activation importance reads (Minitron used 1,024 samples; this is a
# first default for a CPU, not tuned). Never validation or test windows.
CALIBRATION_WINDOWS = 64


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
        width, heads, hidden = (self.spec.get(k) for k in ("intermediate", "heads", "hidden"))
        found = Activations(None, None, None)
        if self.spec.get("importance") == "activation" and (width or heads or hidden):
            # All measured on the layers kept, before any is cut (as Minitron ranks them).
            tokens = self.context.data.train.head(CALIBRATION_WINDOWS).long()
            found = activation_importance(model.float(), tokens)
        if width is not None:
            narrow_mlp(model, width, scores=found.neurons)
        if heads is not None:
            prune_heads(model, heads, scores=found.heads)
        if hidden is not None:
            prune_hidden(model, hidden, scores=found.hidden)
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
            "importance": self.spec.get("importance", "magnitude"),
            "random_init_baseline": bool(self.spec.get("random_init_baseline")),
        }
