"""What a job may name: models, datasets, distillation methods and temperature schedules.

Torch-free: the API validates job specs against these schemas; `worker/models` and
`worker/data` register implementations under exactly these names (a test checks both sides).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


Width = Annotated[int, Field(ge=1, le=4096)]


# --- models -----------------------------------------------------------------------------------


class MlpParams(Params):
    hidden: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default=[128], max_length=32, description="width of each hidden layer"
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class Cnn1dParams(Params):
    channels: Width = Field(default=32, description="channels of each of the 3 conv layers")


class Cnn2dParams(Params):
    channels: list[Width] = Field(
        default=[32, 64], min_length=1, max_length=8, description="channels per conv block"
    )


class ResnetCifarParams(Params):
    depth: Literal[8, 14, 20, 32, 44, 56, 110] = Field(default=20, description="6n+2 layers")
    width: Literal[16, 64] = Field(default=16, description="first-stage channels (64: x4)")


class GptParams(Params):
    layers: Annotated[int, Field(ge=1, le=96)] = Field(default=4, description="transformer blocks")
    heads: Annotated[int, Field(ge=1, le=128)] = Field(default=4, description="attention heads")
    dim: Annotated[int, Field(ge=8, le=8192)] = Field(
        default=128, description="embedding width (a multiple of heads)"
    )
    context: Annotated[int, Field(ge=2, le=8192)] = Field(
        default=256, description="longest sequence (positions) the model reads"
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> "GptParams":
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")
        return self


class TextTransformerParams(Params):
    layers: Annotated[int, Field(ge=1, le=48)] = Field(default=2, description="encoder blocks")
    heads: Annotated[int, Field(ge=1, le=64)] = Field(default=4, description="attention heads")
    dim: Annotated[int, Field(ge=8, le=4096)] = Field(
        default=128, description="embedding width (a multiple of heads)"
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> "TextTransformerParams":
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")
        return self


class TextCnnParams(Params):
    dim: Annotated[int, Field(ge=1, le=1024)] = Field(default=32, description="byte embedding")
    channels: Width = Field(default=128, description="filters per kernel width")
    kernels: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        default=[3, 5, 7], min_length=1, max_length=8, description="kernel widths, in bytes"
    )


# --- datasets ---------------------------------------------------------------------------------


class DigitsOptions(Params):
    layout: Literal["flat", "image"] = Field(
        default="flat", description="flat: x is (64,); image: x is (1, 8, 8)"
    )


class Mnist1dOptions(Params):
    num_samples: int = Field(default=5000, ge=100, le=1_000_000)
    seed: int = Field(default=42, ge=0, le=2**31 - 1)


class SyntheticOptions(Params):
    shape: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default=[32], min_length=1, max_length=3
    )
    num_classes: int = Field(default=10, ge=2, le=1000)
    num_samples: int = Field(default=2000, ge=10, le=1_000_000)
    noise: float = Field(default=1.0, ge=0.0, le=100.0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class TextCorpusOptions(Params):
    context: Annotated[int, Field(ge=2, le=8192)] = Field(
        default=128, description="bytes per training window (the model predicts each next byte)"
    )
    max_bytes: Annotated[int, Field(ge=10_000, le=200_000_000)] = Field(
        default=2_000_000, description="bytes of text to read"
    )


class FileOptions(Params):
    """An uploaded dataset takes its options (label column, image size, ...) at upload."""


# --- methods ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    params: type[Params]
    # Models: the names of the layers distillation methods may tap, given resolved params.
    layers: Callable[[dict[str, Any]], list[str]] | None = field(default=None, compare=False)
    layers_note: str | None = None
    # The tasks (`spec.task`) a job may name the entry in.
    tasks: tuple[str, ...] = ("classification",)
    # Models: what they read, "values" (numbers, normalised inside) or "bytes" (text as UTF-8
    # byte ids: datasets of text, app/files/text_examples.py).
    inputs: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "params": self.params.model_json_schema(),
        }
        out["tasks"] = list(self.tasks)
        if self.inputs is not None:
            out["inputs"] = self.inputs
        if self.layers is not None:
            out["layers"] = self.layers(self.params().model_dump(mode="json"))
            out["layers_note"] = self.layers_note
        return out


BOTH_TASKS = ("classification", "language_model")


def _by_name(entries: list[Entry]) -> dict[str, Entry]:
    return {e.name: e for e in entries}


def _numbered(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i + 1}" for i in range(count)]


MODELS: dict[str, Entry] = _by_name(
    [
        Entry(
            "mlp",
            "Multi-layer perceptron over the flattened input.",
            MlpParams,
            lambda p: _numbered("hidden", len(p["hidden"])),
            "hidden1..hiddenN: each hidden layer after its ReLU (one per entry of `hidden`)",
            inputs="values",
        ),
        Entry(
            "cnn1d",
            "Three strided 1-D convolutions and a linear head (MNIST-1D).",
            Cnn1dParams,
            lambda p: _numbered("conv", 3),
            "conv1..conv3: each convolution after its ReLU",
            inputs="values",
        ),
        Entry(
            "cnn2d",
            "Conv-BN-ReLU-pool blocks and a linear head, for images.",
            Cnn2dParams,
            lambda p: _numbered("block", len(p["channels"])),
            "block1..blockN: each block after its pooling (one per entry of `channels`)",
            inputs="values",
        ),
        Entry(
            "resnet_cifar",
            "CIFAR ResNet (He et al. 2016), 6n+2 layers.",
            ResnetCifarParams,
            lambda p: ["stem", *_numbered("stage", 3)],
            "stem, then stage1..stage3: the output of each stage's last residual block",
            inputs="values",
        ),
        Entry(
            "gpt",
            "Byte-level GPT (nanoGPT-style, causal attention) for the language_model task.",
            GptParams,
            lambda p: _numbered("block", p["layers"]),
            "block1..blockN: each transformer block's output, per position",
            tasks=("language_model",),
            inputs="bytes",
        ),
        Entry(
            "text_transformer",
            "Byte-level transformer encoder for text classification: byte and position "
            "embeddings, bidirectional self-attention blocks, the mean over the text's bytes "
            "(padding masked) and a linear head.",
            TextTransformerParams,
            inputs="bytes",
        ),
        Entry(
            "text_cnn",
            "Byte-level CNN for text classification (Kim 2014 on bytes): a byte embedding, "
            "1-D convolutions of several widths, max over the text's positions, a linear head.",
            TextCnnParams,
            inputs="bytes",
        ),
    ]
)

DATASETS: dict[str, Entry] = _by_name(
    [
        Entry("digits", "scikit-learn 8x8 handwritten digits, 10 classes.", DigitsOptions),
        Entry("mnist1d", "MNIST-1D (Greydanus 2020), sequences of 40, 10 classes.", Mnist1dOptions),
        Entry("synthetic", "Gaussian class clusters of any shape.", SyntheticOptions),
        Entry(
            "pystdlib",
            "Text: the Python standard library's own source (.py files, no tests), as bytes.",
            TextCorpusOptions,
            tasks=("language_model",),
        ),
        Entry(
            "file",
            "An uploaded dataset (POST /v1/files, purpose 'dataset'): name it 'file:<id>'; "
            "a .txt or .jsonl file is text for language_model jobs.",
            FileOptions,
            tasks=BOTH_TASKS,
        ),
    ]
)

FILE_PREFIX = "file:"


def dataset_kind(name: str) -> str:
    """The catalog entry a dataset name refers to: 'file:<id>' is an uploaded file."""
    if name.startswith(FILE_PREFIX):
        return "file"
    if name == "file":
        raise SpecError("dataset.name", "name an uploaded dataset as 'file:<id>'")
    return name


METHODS: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry(
            "kd",
            "Hinton et al. 2015: KL to the teacher's softened outputs plus CE "
            "(language_model: per token, the forward KL).",
            KdParams,
            tasks=BOTH_TASKS,
        ),
        Entry(
            "dkd",
            "Decoupled KD (Zhao et al. 2022): TCKD and NCKD weighted apart (per token for "
            "language_model).",
            DkdParams,
            tasks=BOTH_TASKS,
        ),
        Entry(
            "reverse_kl",
            "Reverse KL, KL(student || teacher), mode-seeking (Gu et al. 2024, MiniLLM), plus CE.",
            ReverseKlParams,
            tasks=BOTH_TASKS,
        ),
        Entry(
            "jsd",
            "Generalised JSD(beta) between teacher and student (Agarwal et al. 2024, GKD), "
            "plus CE.",
            JsdParams,
            tasks=BOTH_TASKS,
        ),
        Entry(
            "seqkd",
            "Sequence-level KD (Kim & Rush 2016): the teacher rewrites each window from its first "
            "bytes, sampling; the student learns that text by cross-entropy.",
            SeqKdParams,
            tasks=("language_model",),
        ),
        Entry(
            "fitnets",
            "FitNets (Romero et al. 2015): KD plus a regressed hint on intermediate features.",
            FitnetsParams,
        ),
        Entry(
            "at",
            "Attention transfer (Zagoruyko & Komodakis 2017): KD plus matched attention maps.",
            AtParams,
        ),
    ]
}

TEACHER_SOURCES = ("train", "weights", "onnx", "logits", "hf")
TEMPERATURE_SCHEDULES = ("constant", "linear", "cosine", "step", "plateau")
EXPORT_FORMATS: tuple[Literal["safetensors", "onnx", "torchscript"], ...] = (
    "safetensors",
    "onnx",
    "torchscript",
)


class SpecError(ValueError):
    """A job spec names something unknown or gives bad parameters; `param` is the field path."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def resolve_params(kind: dict[str, Entry], name: str, params: dict[str, Any], path: str) -> dict:
    """Validate `params` for the catalog entry `name`; return them with defaults filled in.

    `path` is the spec field that holds the name, e.g. "teacher" (name at "teacher.arch",
    params at "teacher.params").
    """
    name_field, params_field = _fields(path, kind)
    entry = kind.get(name)
    if entry is None:
        known = ", ".join(sorted(kind))
        raise SpecError(name_field, f"unknown name {name!r}; known: {known}")
    try:
        return entry.params.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        param = f"{params_field}.{loc}" if loc else params_field
        raise SpecError(param, f"{first['msg']}") from None


def _fields(path: str, kind: dict[str, Entry]) -> tuple[str, str]:
    if kind is MODELS:
        return f"{path}.arch", f"{path}.params"
    if kind is DATASETS:
        return f"{path}.name", f"{path}.options"
    return f"{path}.method", f"{path}.method_params"


def model_layers(arch: str, params: dict[str, Any]) -> list[str]:
    """The layer names of a zoo model with resolved `params` (forward order)."""
    layers = MODELS[arch].layers
    return layers(params) if layers is not None else []


def method_taps_teacher(method: str) -> bool:
    """Whether the method reads the teacher's intermediate features (so it runs online)."""
    params = METHODS[method].params
    return bool(getattr(params, "layer_fields", ()))


def resolve_layer_pairs(spec: dict[str, Any]) -> None:
    """Fill in and check the layer pairs of `spec["distill"]["method_params"]` (resolved):
    a pair left out defaults to the last feature layer of each model; every name must be a
    layer of its model; the teacher must be a zoo model the worker can run online."""
    distill = spec["distill"]
    method = distill["method"]
    fields = getattr(METHODS[method].params, "layer_fields", ())
    if not fields:
        return
    teacher, student = spec["teacher"], spec["student"]
    if "arch" not in teacher:
        raise SpecError(
            "distill.method",
            f"{method!r} reads the teacher's intermediate layers; a teacher from "
            f"{teacher['source']!r} has none (use a teacher from 'train' or 'weights', or 'kd')",
        )
    if distill["soft_labels"] == "stored":
        raise SpecError(
            "distill.soft_labels",
            f"{method!r} reads the teacher's intermediate layers at every step, which the "
            "soft-label store does not keep; use 'auto' or 'online'",
        )
    layers = {
        "teacher": model_layers(teacher["arch"], teacher["params"]),
        "student": model_layers(student["arch"], student["params"]),
    }
    for role, names in layers.items():
        if not names:
            arch = spec[role]["arch"]
            raise SpecError(f"{role}.arch", f"{arch!r} has no layers {method!r} can read")
    params = distill["method_params"]
    for name in fields:
        if params.get(name) is None:
            params[name] = [{"student": layers["student"][-1], "teacher": layers["teacher"][-1]}]
        for i, pair in enumerate(params[name]):
            for role in ("student", "teacher"):
                if pair[role] not in layers[role]:
                    raise SpecError(
                        f"distill.method_params.{name}.{i}.{role}",
                        f"{pair[role]!r} is not a layer of the {role} "
                        f"({spec[role]['arch']}); its layers: {', '.join(layers[role])}",
                    )
