"""Distillation methods (`distill.method`, `distill.method_params`): each one's parameters and
the tasks it serves; methods with layer pairs read the models' intermediate layers (the
teacher then runs online). `worker/kd/methods/` implements each under the same name, one file
each."""

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import Field

from distillery.types.catalog.base import BOTH_TASKS, Entry, Params, by_name


@dataclass(frozen=True)
class MethodEntry(Entry):
    name_field: ClassVar[str] = "method"
    params_field: ClassVar[str] = "method_params"
    # The teacher writes text the student learns (it samples from a PyTorch module the worker
    # runs, byte by byte: a zoo `gpt`).
    teacher_writes: bool = False
    # It reads the last hidden states of a student made from its teacher's layers
    # (`from_teacher` of an `hf` sequence classifier; the teacher runs online).
    hidden_states: bool = False

    def layer_fields(self) -> tuple[str, ...]:
        """The params fields that hold (student, teacher) layer pairs."""
        return tuple(getattr(self.params, "layer_fields", ()))

    def reads_layers(self) -> bool:
        """Whether the method reads the teacher's intermediate features (so it runs online)."""
        return bool(self.layer_fields())

    def capabilities(self) -> dict[str, Any]:
        return {
            "reads_layers": self.reads_layers(),
            "layer_fields": list(self.layer_fields()),
            "teacher_writes": self.teacher_writes,
            "hidden_states": self.hidden_states,
        }


class KdParams(Params):
    """Hinton KD has no parameters beyond `distill.temperature`, `kd_weight` and `ce_weight`."""


class LayerPair(Params):
    """A student layer matched to a teacher layer (names from the models' `layers`)."""

    student: str = Field(description="a layer name of the student arch")
    teacher: str = Field(description="a layer name of the teacher arch")


Weight = Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
LayerPairs = Annotated[list[LayerPair], Field(min_length=1, max_length=16)]


class MethodParams(Params):
    # The fields that hold layer pairs: a method with any needs the teacher's features, so
    # the teacher must be a zoo model run online (not ONNX, not logits, not stored labels).
    layer_fields: ClassVar[tuple[str, ...]] = ()


class LskdParams(Params):
    """Logit-standardised KD has no parameters beyond `distill.temperature`, `kd_weight` and
    `ce_weight`."""


class DkdParams(MethodParams):
    """Decoupled KD (Zhao et al. 2022): the KD term splits into target-class KD (TCKD) and
    non-target-class KD (NCKD), weighted apart."""

    alpha: Weight = Field(default=1.0, description="weight of TCKD (target vs the rest)")
    beta: Weight = Field(default=8.0, description="weight of NCKD (among non-target classes)")


class FitnetsParams(MethodParams):
    """FitNets (Romero et al. 2015): a learned regressor maps student features onto the
    teacher's hint layer; MSE between them joins the KD and CE terms."""

    layer_fields: ClassVar[tuple[str, ...]] = ("hints",)
    hints: LayerPairs | None = Field(
        default=None,
        description="student/teacher layer pairs; default: the last feature layer of each",
    )
    hint_weight: Weight = Field(default=1.0, description="weight of the hint (MSE) term")
    hint_epochs: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="epochs of the paper's first stage (a `hints` stage: the student and its "
        "regressors learn the hint term alone, before distillation); 0: one stage",
    )


class AtParams(MethodParams):
    """Attention transfer (Zagoruyko & Komodakis 2017): match the normalised spatial
    attention maps (mean over channels of |A|^2) of layer pairs."""

    layer_fields: ClassVar[tuple[str, ...]] = ("pairs",)
    pairs: LayerPairs | None = Field(
        default=None,
        description="student/teacher layer pairs; default: the last feature layer of each",
    )
    at_weight: Weight = Field(default=1000.0, description="beta: weight of the AT term")


class SeqKdParams(Params):
    """Sequence-level KD (Kim & Rush 2016): the student learns the text the teacher writes."""

    prompt_bytes: Annotated[int, Field(ge=1, le=8191)] = Field(
        default=16,
        description="each distillation window's first bytes prompt the teacher, which writes "
        "the rest of the window",
    )
    sample_temperature: float = Field(
        default=1.0, gt=0.0, le=10.0, description="the teacher's sampling temperature"
    )


class ReverseKlParams(Params):
    """Reverse KL has no parameters beyond `distill.temperature`, `kd_weight` and `ce_weight`."""


class JsdParams(Params):
    """Generalised Jensen-Shannon divergence (GKD, Agarwal et al. 2024)."""

    beta: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="the mixture's teacher share: 0 is forward KL, 1 reverse KL",
    )


class DistilBertParams(Params):
    """DistilBERT (Sanh et al. 2019): KD and CE plus a cosine term between the student's and
    the teacher's last hidden states."""

    cos_weight: Weight = Field(
        default=1.0,
        description="weight of the cosine term, mean over real tokens of 1 - cos(h_s, h_t)",
    )


METHODS: dict[str, MethodEntry] = by_name(
    [
        MethodEntry(
            "kd",
            "Hinton et al. 2015: KL to the teacher's softened outputs plus CE "
            "(language_model: per token, the forward KL).",
            KdParams,
            tasks=BOTH_TASKS,
        ),
        MethodEntry(
            "lskd",
            "Logit-standardised KD (Sun et al. 2024): each logit vector, the teacher's and the "
            "student's, standardised by its mean and standard deviation over classes before "
            "the softened KL, so the student matches the teacher's logit relations rather "
            "than their scale; T^2 and CE as in kd.",
            LskdParams,
            tasks=BOTH_TASKS,
        ),
        MethodEntry(
            "dkd",
            "Decoupled KD (Zhao et al. 2022): TCKD and NCKD weighted apart (per token for "
            "language_model).",
            DkdParams,
            tasks=BOTH_TASKS,
        ),
        MethodEntry(
            "reverse_kl",
            "Reverse KL, KL(student || teacher), mode-seeking (Gu et al. 2024, MiniLLM), plus CE.",
            ReverseKlParams,
            tasks=BOTH_TASKS,
        ),
        MethodEntry(
            "jsd",
            "Generalised JSD(beta) between teacher and student (Agarwal et al. 2024, GKD), "
            "plus CE.",
            JsdParams,
            tasks=BOTH_TASKS,
        ),
        MethodEntry(
            "seqkd",
            "Sequence-level KD (Kim & Rush 2016): the teacher rewrites each window from its first "
            "bytes, sampling; the student learns that text by cross-entropy.",
            SeqKdParams,
            tasks=("language_model",),
            teacher_writes=True,
        ),
        MethodEntry(
            "distilbert",
            "DistilBERT (Sanh et al. 2019): KD plus CE plus the cosine between the student's and "
            "the teacher's last hidden states, for a from_teacher student of an hf sequence "
            "classifier (the teacher runs online).",
            DistilBertParams,
            hidden_states=True,
        ),
        MethodEntry(
            "fitnets",
            "FitNets (Romero et al. 2015): KD plus a regressed hint on intermediate features.",
            FitnetsParams,
        ),
        MethodEntry(
            "at",
            "Attention transfer (Zagoruyko & Komodakis 2017): KD plus matched attention maps.",
            AtParams,
        ),
    ]
)
