"""Augmentations (`dataset.augment.kind`): per-example random transforms for every training
stage, each kind's parameters and the inputs it transforms (`modalities`: numbers and images,
not text yet). `worker/augment/` implements each under the same name, one file each."""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from distillery.types.catalog.base import Entry, by_name
from distillery.types.fields import Strict, finite

NoiseScale = Annotated[float, Field(ge=0, le=10), AfterValidator(finite)]
MixAlpha = Annotated[float, Field(ge=0, le=100), AfterValidator(finite)]


class AugmentSpecBase(Strict):
    """What every augmentation spec has: its kind."""

    kind: str


class ImageAugment(AugmentSpecBase):
    """Images (channels, height, width): random crop after zero padding, horizontal flip, and
    optionally mixup / cutmix with the next example of the epoch."""

    kind: Literal["image"]
    crop_padding: Annotated[int, Field(ge=0, le=64)] = 4
    flip: bool = True
    mixup: MixAlpha = Field(default=0.0, description="Beta(alpha, alpha) of mixup; 0: off")
    cutmix: MixAlpha = Field(
        default=0.0, description="Beta(alpha, alpha) of cutmix; 0: off (both on: half each)"
    )


class SignalAugment(AugmentSpecBase):
    """1-D signals (length,) or (channels, length): random shift (edge padded), gaussian noise."""

    kind: Literal["signal"]
    shift: Annotated[int, Field(ge=0, le=4096)] = 4
    noise: NoiseScale = Field(default=0.05, description="noise std, in units of the data's std")


class TabularAugment(AugmentSpecBase):
    """Any inputs: gaussian noise."""

    kind: Literal["tabular"]
    noise: NoiseScale = Field(default=0.1, description="noise std, in units of the data's std")


@dataclass(frozen=True)
class AugmentationEntry(Entry):
    # The dataset modalities the kind transforms ("values": numbers and images; "text").
    modalities: tuple[str, ...] = ("values",)

    def capabilities(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities)}


AUGMENTATIONS: dict[str, AugmentationEntry] = by_name(
    [
        AugmentationEntry(
            "image",
            "Random crop of the zero-padded image, horizontal flip; optionally mixup / cutmix.",
            ImageAugment,
        ),
        AugmentationEntry(
            "signal", "1-D signals: random shift (edge padded) and gaussian noise.", SignalAugment
        ),
        AugmentationEntry("tabular", "Any numeric inputs: gaussian noise.", TabularAugment),
    ]
)
