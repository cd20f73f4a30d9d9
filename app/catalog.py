"""What a job may name: models, datasets, distillation methods and temperature schedules.

Torch-free: the API validates job specs against these schemas; `worker/models` and
`worker/data` register implementations under exactly these names (a test checks both sides).
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


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


class FileOptions(Params):
    """An uploaded dataset takes its options (label column, image size, ...) at upload."""


# --- methods ----------------------------------------------------------------------------------


class KdParams(Params):
    """Hinton KD has no parameters beyond `distill.temperature`, `kd_weight` and `ce_weight`."""


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    params: type[Params]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params": self.params.model_json_schema(),
        }


MODELS: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("mlp", "Multi-layer perceptron over the flattened input.", MlpParams),
        Entry("cnn1d", "Three strided 1-D convolutions and a linear head (MNIST-1D).", Cnn1dParams),
        Entry("cnn2d", "Conv-BN-ReLU-pool blocks and a linear head, for images.", Cnn2dParams),
        Entry("resnet_cifar", "CIFAR ResNet (He et al. 2016), 6n+2 layers.", ResnetCifarParams),
    ]
}

DATASETS: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("digits", "scikit-learn 8x8 handwritten digits, 10 classes.", DigitsOptions),
        Entry("mnist1d", "MNIST-1D (Greydanus 2020), sequences of 40, 10 classes.", Mnist1dOptions),
        Entry("synthetic", "Gaussian class clusters of any shape.", SyntheticOptions),
        Entry(
            "file",
            "An uploaded dataset (POST /v1/files, purpose 'dataset'): name it 'file:<id>'.",
            FileOptions,
        ),
    ]
}

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
        Entry("kd", "Hinton et al. 2015: KL to the teacher's softened outputs plus CE.", KdParams),
    ]
}

TEACHER_SOURCES = ("train", "weights", "onnx", "logits")
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
