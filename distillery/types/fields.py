"""Field types shared by the wire models and the catalog's parameter models: text and JSON the
database can store, finite numbers, epochs, batch sizes, UTC timestamps, strict models."""

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer


def finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return value


# Deeper JSON than this is refused: no job spec needs it, and every layer of the service
# (JSON columns, serialisers) recurses over it.
MAX_JSON_DEPTH = 32


def _storable_text(value: str) -> str:
    """Text PostgreSQL and SQLite can store: no NUL, no lone UTF-16 surrogate (JSON's parser
    accepts "\\ud800"; UTF-8 cannot encode it, so the row could be written but never read)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone UTF-16 surrogate)") from None
    return value


def _storable_json(value: Any, depth: int = 0) -> Any:
    """JSON the database can store and read back: finite numbers (JSON has no NaN or Infinity,
    PostgreSQL refuses them; Python's parser accepts both), storable text in keys and values,
    at most MAX_JSON_DEPTH levels deep."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float):
        finite(value)
    elif isinstance(value, str):
        _storable_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable_text(str(key))
            _storable_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _storable_json(item, depth + 1)
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


PositiveFinite = Annotated[float, Field(gt=0), AfterValidator(finite)]
# Past 1,000 the softened distributions are uniform to float32 precision (and a huge T makes
# T^2 overflow); no published schedule goes near it.
Temperature = Annotated[float, Field(gt=0, le=1000), AfterValidator(finite)]
NonNegativeFinite = Annotated[float, Field(ge=0), AfterValidator(finite)]
# Strictly between 0 and 1 (NaN fails both bounds).
Fraction = Annotated[float, Field(gt=0, lt=1)]
Epochs = Annotated[int, Field(ge=1, le=10_000)]
BatchSize = Annotated[int, Field(ge=1, le=65_536)]
FileId = Annotated[Text, Field(min_length=1, max_length=40, description="id of an uploaded file")]


def _utc_iso(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


# Stored as naive UTC; served with an explicit "Z" so clients don't read local time.
UtcDatetime = Annotated[datetime, PlainSerializer(_utc_iso, return_type=str)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSettings(Strict):
    epochs: Epochs = 30
    batch_size: BatchSize = 128
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFinite = 0.003
    weight_decay: NonNegativeFinite = 0.0
    lr_schedule: Literal["constant", "cosine"] = "constant"
