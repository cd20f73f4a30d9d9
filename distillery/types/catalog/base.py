"""What a catalog entry is: the name a job spec gives, its description, the schema of its
parameters, the tasks it serves and what it is able to do (its capabilities), as
`GET /v1/catalog/<kind>` lists it; and SpecError, what resolving a spec against it raises."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from distillery.types.fields import Strict

CLASSIFICATION = "classification"
LANGUAGE_MODEL = "language_model"
BOTH_TASKS = (CLASSIFICATION, LANGUAGE_MODEL)


class Params(Strict):
    """An entry's parameters: unknown fields are refused."""


class SpecError(ValueError):
    """A job spec names something unknown or gives bad parameters; `param` is the field path."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Entry:
    """One thing a job may name. `params` is the schema of what it takes (a spec model for
    entries named by a `source` or `kind` field); `tasks` the learning tasks it serves."""

    # The spec fields, under the part that names an entry of this kind, holding its name and
    # its params (e.g. "arch" and "params" under "teacher").
    name_field: ClassVar[str] = "name"
    params_field: ClassVar[str] = "params"

    name: str
    description: str
    params: type[BaseModel]
    tasks: tuple[str, ...] = (CLASSIFICATION,)

    def capabilities(self) -> dict[str, Any]:
        """What the entry can do, beyond its tasks (listed by the catalog endpoint)."""
        return {}

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params": self.params.model_json_schema(),
            "tasks": list(self.tasks),
            "capabilities": self.capabilities(),
        }


E = TypeVar("E", bound=Entry)


def by_name(entries: Iterable[E]) -> dict[str, E]:
    """Entries keyed by name, in the order given; a name given twice fails loudly."""
    out: dict[str, E] = {}
    for entry in entries:
        if entry.name in out:
            raise KeyError(f"catalog entry {entry.name!r} is listed twice")
        out[entry.name] = entry
    return out


def numbered(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i + 1}" for i in range(count)]


def resolve_params(entries: dict[str, E], name: str, params: dict[str, Any], path: str) -> dict:
    """Validate `params` for the entry `name`; return them with defaults filled in.

    `path` is the spec part that names the entry, e.g. "teacher" (name at "teacher.arch",
    params at "teacher.params"): SpecError names the name's field for an unknown name, the
    params' field and location for bad parameters."""
    kind = type(next(iter(entries.values())))
    name_field, params_field = f"{path}.{kind.name_field}", f"{path}.{kind.params_field}"
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(sorted(entries))
        raise SpecError(name_field, f"unknown name {name!r}; known: {known}")
    try:
        return entry.params.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        param = f"{params_field}.{loc}" if loc else params_field
        raise SpecError(param, f"{first['msg']}") from None


class CatalogEntry(BaseModel):
    """An entry as `GET /v1/catalog/<kind>` lists it."""

    name: str
    description: str
    params: dict[str, Any]
    tasks: list[str] = Field(description="the tasks (`task`) a job may name this entry in")
    capabilities: dict[str, Any] = Field(
        default_factory=dict,
        description="what the entry can do: models' `inputs` and `layers`, teacher sources' "
        "`module` and `file`, augmentations' `modalities`, tasks' metrics, ...",
    )
    layers: list[str] | None = Field(
        default=None,
        description="models: the layers methods may tap (for the default params); see layers_note",
    )
    layers_note: str | None = None
    inputs: str | None = Field(
        default=None, description="models: what they read, 'values' (numbers) or 'bytes' (text)"
    )


class CatalogList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CatalogEntry]


__all__ = [
    "BOTH_TASKS",
    "CLASSIFICATION",
    "LANGUAGE_MODEL",
    "CatalogEntry",
    "CatalogList",
    "Entry",
    "Params",
    "SpecError",
    "by_name",
    "numbered",
    "resolve_params",
]
