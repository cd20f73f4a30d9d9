"""`from_teacher`: the teacher's causal LM with only the layers `layers` names, each initialised
from the teacher's layer, their MLPs cut to `intermediate` neurons, their attention to `heads`
heads and the hidden size to `hidden` channels when given (worker/causal_lm/shrink.py), what
is kept chosen by weight magnitude or, with `importance: "activation"`, by the activations of
the first training windows; the teacher's embeddings, final norm, head and tokenizer.
`random_init_baseline` asks for the same architecture from random init as a second baseline.

With a sequence-classifier teacher (an `hf` upload, in a classification job) the student is
the teacher's classifier with only `layers` of its encoder, each initialised from the
teacher's, its embeddings and head too, reading text through the teacher's tokenizer
(worker/hf_classifier.py): DistilBERT's student; `intermediate` cuts its MLPs (BERT-style
intermediate/output layers) by weight magnitude; `heads` and `hidden` are for causal LMs."""

from typing import Any

from torch import nn

from distillery.types.catalog import SpecError
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
from worker.hf_classifier import TextClassifier
from worker.students.registry import STUDENT_SOURCES, StudentSource

# Training windows the activation importance reads (Minitron used 1,024 samples; this is a
# first default for a CPU, not tuned). Never validation or test windows.
CALIBRATION_WINDOWS = 64


# A sequence classifier's student keeps its attention and hidden width (BERT's attention has
# no head width of its own: fewer heads would reload wider); its MLPs may be cut.
NOT_FOR_ENCODERS = ("heads", "hidden")
ENCODER_WIDTH = (
    "a student of a sequence classifier keeps its heads and hidden size; `intermediate` "
    "cuts its MLPs"
)


@STUDENT_SOURCES.register("from_teacher")
class FromTeacherStudent(StudentSource):
    name = "from_teacher"

    def layers(self) -> list[int]:
        layers = self.spec["layers"]
        if layers == "every_other":
            return every_other(layer_count(self.teacher_hf()))
        return list(layers)

    def build(self) -> nn.Module:
        classifier = self.teacher_classifier()
        if classifier is not None:
            for option in NOT_FOR_ENCODERS:  # the API refuses them; a stored spec may hold one
                if self.spec.get(option) is not None:
                    raise SpecError(f"student.{option}", ENCODER_WIDTH)
            encoder = keep_layers(classifier.hf, self.layers()).float()
            if self.spec.get("intermediate") is not None:
                narrow_mlp(encoder, self.spec["intermediate"])
            return classifier.like(encoder)
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
        built = self.build()
        if isinstance(built, TextClassifier):
            return built.like(random_like(built.hf))
        return TokenLm(random_like(built.hf))

    def describe(self) -> dict[str, Any]:
        teacher = self.teacher_hf()
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
