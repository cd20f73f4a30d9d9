"""Temperature schedules (`distill.temperature_schedule.kind`): how T moves over the epochs of
distillation, and each kind's parameters. `worker/kd/schedules.py` implements each."""

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, model_validator

from distillery.types.catalog.base import BOTH_TASKS, Entry, by_name
from distillery.types.fields import Epochs, PositiveFinite, Strict, Temperature


class ScheduleSpecBase(Strict):
    """What every schedule spec has: its kind."""

    kind: str


class ConstantSchedule(ScheduleSpecBase):
    kind: Literal["constant"] = "constant"


class LinearSchedule(ScheduleSpecBase):
    kind: Literal["linear"]
    end: Temperature = Field(description="temperature at the last epoch")


class CosineSchedule(ScheduleSpecBase):
    kind: Literal["cosine"]
    end: Temperature = Field(description="temperature at the last epoch")


class StepSchedule(ScheduleSpecBase):
    kind: Literal["step"]
    step_size: Epochs = Field(description="epochs between changes")
    gamma: PositiveFinite = Field(description="factor applied at each step")


class PlateauSchedule(ScheduleSpecBase):
    kind: Literal["plateau"]
    metric: Literal["val_loss", "val_accuracy"] = "val_loss"
    factor: PositiveFinite = Field(0.5, description="T *= factor when the metric stalls")
    patience: Annotated[int, Field(ge=0, le=10_000)] = 2
    min_temperature: Temperature = 1.0
    max_temperature: Temperature = 20.0

    @model_validator(mode="after")
    def _ordered(self) -> "PlateauSchedule":
        if self.min_temperature > self.max_temperature:
            raise ValueError("min_temperature is above max_temperature")
        return self


@dataclass(frozen=True)
class ScheduleEntry(Entry):
    tasks: tuple[str, ...] = BOTH_TASKS


DEFAULT_SCHEDULE = ConstantSchedule

TEMPERATURE_SCHEDULES: dict[str, ScheduleEntry] = by_name(
    [
        ScheduleEntry("constant", "T stays at `distill.temperature`.", ConstantSchedule),
        ScheduleEntry("linear", "T goes linearly to `end` at the last epoch.", LinearSchedule),
        ScheduleEntry("cosine", "T follows a half cosine to `end`.", CosineSchedule),
        ScheduleEntry("step", "T is multiplied by `gamma` every `step_size` epochs.", StepSchedule),
        ScheduleEntry(
            "plateau",
            "T changes by `factor` when the validation metric stalls for `patience` epochs "
            "(like ReduceLROnPlateau), within [min_temperature, max_temperature].",
            PlateauSchedule,
        ),
    ]
)
