"""Models (`teacher.arch`, `student.arch`): the zoo's architectures, their parameters, what
they read and the layers distillation methods may tap. `worker/models/` implements each under
the same name."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from distillery.types.catalog.base import Entry, Params, by_name, numbered


@dataclass(frozen=True)
class Misfit:
    """Why a model cannot read a dataset's examples: the field at fault under the model's role
    (`arch`, or a parameter such as `params.context`) and the reason. The worker's model
    builders (worker/models/) refuse the same inputs when they build the model."""

    field: str
    message: str


# A model's rule: why, with resolved params, it cannot read examples of a shape (or None).
MisfitRule = Callable[[dict[str, Any], list[int]], Misfit | None]


@dataclass(frozen=True)
class ModelEntry(Entry):
    name_field: ClassVar[str] = "arch"
    # The names of the layers distillation methods may tap, given resolved params.
    layers: Callable[[dict[str, Any]], list[str]] | None = field(default=None, compare=False)
    layers_note: str | None = None
    # What the model reads: "values" (numbers, normalised inside) or "bytes" (text as UTF-8
    # byte ids).
    inputs: str = "values"
    # Why the model, with resolved params, cannot read examples of a shape: see Misfit.
    misfit: MisfitRule | None = field(default=None, compare=False)
    # Whether `compress.prune` can remove its channels (torch-pruning's dependency graph
    # covers its layers; attention heads are not handled).
    prunable: bool = False

    def layer_names(self, params: dict[str, Any]) -> list[str]:
        """The layer names for resolved `params` (forward order)."""
        return self.layers(params) if self.layers is not None else []

    def input_misfit(self, params: dict[str, Any], input_shape: list[int]) -> Misfit | None:
        """Why the model with resolved `params` cannot read examples of `input_shape` (one
        example's shape, no batch dimension), or None when it can."""
        return self.misfit(params, input_shape) if self.misfit is not None else None

    def capabilities(self) -> dict[str, Any]:
        defaults = self.params().model_dump(mode="json")
        return {
            "inputs": self.inputs,
            "layers": self.layer_names(defaults),
            "prunable": self.prunable,
        }

    def as_json(self) -> dict[str, Any]:
        out = super().as_json()
        out["inputs"] = self.inputs
        if self.layers is not None:
            out["layers"] = out["capabilities"]["layers"]
            out["layers_note"] = self.layers_note
        return out


Width = Annotated[int, Field(ge=1, le=4096)]


def _wrong_rank(arch: str, takes: str, ranks: tuple[int, ...], shape: list[int]) -> Misfit | None:
    if len(shape) in ranks:
        return None
    return Misfit("arch", f"{arch} takes {takes} inputs; the dataset's examples have shape {shape}")


def _ranks(arch: str, takes: str, *ranks: int) -> MisfitRule:
    """The rule of a model that reads examples of any size of these ranks."""
    return lambda params, shape: _wrong_rank(arch, takes, ranks, shape)


def _cnn1d_misfit(params: dict[str, Any], shape: list[int]) -> Misfit | None:
    wrong = _wrong_rank("cnn1d", "(length,) or (channels, length)", (1, 2), shape)
    if wrong is not None:
        return wrong
    out = shape[-1]
    for kernel in (5, 3, 3):  # its convolutions, padding 1 and stride 2 (worker/models/cnn.py)
        out = (out + 2 - kernel) // 2 + 1
    if out < 1:
        return Misfit("arch", f"cnn1d needs sequences of at least 3 steps, not {shape[-1]} steps")
    return None


def _gpt_misfit(params: dict[str, Any], shape: list[int]) -> Misfit | None:
    wrong = _wrong_rank("gpt", "token sequences (time,)", (1,), shape)
    if wrong is not None:
        return wrong
    if shape[0] > params["context"]:
        return Misfit(
            "params.context",
            f"gpt with context {params['context']} cannot read the dataset's windows of "
            f"{shape[0]} bytes; set context to at least {shape[0]}",
        )
    return None


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


class AttentionParams(Params):
    """Parameters of a model with multi-head attention (its subclasses declare `heads` and
    `dim`, in their own field order): the width splits evenly over the heads."""

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> "AttentionParams":
        heads, dim = getattr(self, "heads"), getattr(self, "dim")  # noqa: B009
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        return self


class GptParams(AttentionParams):
    layers: Annotated[int, Field(ge=1, le=96)] = Field(default=4, description="transformer blocks")
    heads: Annotated[int, Field(ge=1, le=128)] = Field(default=4, description="attention heads")
    dim: Annotated[int, Field(ge=8, le=8192)] = Field(
        default=128, description="embedding width (a multiple of heads)"
    )
    context: Annotated[int, Field(ge=2, le=8192)] = Field(
        default=256, description="longest sequence (positions) the model reads"
    )


class TextTransformerParams(AttentionParams):
    layers: Annotated[int, Field(ge=1, le=48)] = Field(default=2, description="encoder blocks")
    heads: Annotated[int, Field(ge=1, le=64)] = Field(default=4, description="attention heads")
    dim: Annotated[int, Field(ge=8, le=4096)] = Field(
        default=128, description="embedding width (a multiple of heads)"
    )


class TextCnnParams(Params):
    dim: Annotated[int, Field(ge=1, le=1024)] = Field(default=32, description="byte embedding")
    channels: Width = Field(default=128, description="filters per kernel width")
    kernels: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        default=[3, 5, 7], min_length=1, max_length=8, description="kernel widths, in bytes"
    )


MODELS: dict[str, ModelEntry] = by_name(
    [
        ModelEntry(
            "mlp",
            "Multi-layer perceptron over the flattened input.",
            MlpParams,
            layers=lambda p: numbered("hidden", len(p["hidden"])),
            layers_note="hidden1..hiddenN: each hidden layer after its ReLU (one per entry of "
            "`hidden`)",
            inputs="values",
            prunable=True,
        ),
        ModelEntry(
            "cnn1d",
            "Three strided 1-D convolutions and a linear head (MNIST-1D).",
            Cnn1dParams,
            layers=lambda p: numbered("conv", 3),
            layers_note="conv1..conv3: each convolution after its ReLU",
            inputs="values",
            misfit=_cnn1d_misfit,
            prunable=True,
        ),
        ModelEntry(
            "cnn2d",
            "Conv-BN-ReLU-pool blocks and a linear head, for images.",
            Cnn2dParams,
            layers=lambda p: numbered("block", len(p["channels"])),
            layers_note="block1..blockN: each block after its pooling (one per entry of "
            "`channels`)",
            inputs="values",
            misfit=_ranks("cnn2d", "(height, width) or (channels, height, width)", 2, 3),
            prunable=True,
        ),
        ModelEntry(
            "resnet_cifar",
            "CIFAR ResNet (He et al. 2016), 6n+2 layers.",
            ResnetCifarParams,
            layers=lambda p: ["stem", *numbered("stage", 3)],
            layers_note="stem, then stage1..stage3: the output of each stage's last residual block",
            inputs="values",
            misfit=_ranks("resnet_cifar", "(channels, height, width)", 3),
            prunable=True,
        ),
        ModelEntry(
            "gpt",
            "Byte-level GPT (nanoGPT-style, causal attention) for the language_model task.",
            GptParams,
            layers=lambda p: numbered("block", p["layers"]),
            layers_note="block1..blockN: each transformer block's output, per position",
            tasks=("language_model",),
            inputs="bytes",
            misfit=_gpt_misfit,
        ),
        ModelEntry(
            "text_transformer",
            "Byte-level transformer encoder for text classification: byte and position "
            "embeddings, bidirectional self-attention blocks, the mean over the text's bytes "
            "(padding masked) and a linear head.",
            TextTransformerParams,
            inputs="bytes",
            misfit=_ranks("text_transformer", "texts as bytes (length,)", 1),
        ),
        ModelEntry(
            "text_cnn",
            "Byte-level CNN for text classification (Kim 2014 on bytes): a byte embedding, "
            "1-D convolutions of several widths, max over the text's positions, a linear head.",
            TextCnnParams,
            inputs="bytes",
            misfit=_ranks("text_cnn", "texts as bytes (length,)", 1),
            prunable=True,
        ),
    ]
)


def model_layers(arch: str, params: dict[str, Any]) -> list[str]:
    """The layer names of a zoo model with resolved `params` (forward order)."""
    return MODELS[arch].layer_names(params)
