"""Resolving names and parameters against the torch-free catalog."""

import pytest

from distillery.types import catalog
from distillery.types.catalog import SpecError


def test_defaults_are_filled_in() -> None:
    assert catalog.resolve_params(catalog.MODELS, "cnn1d", {}, "teacher") == {"channels": 32}
    resolved = catalog.resolve_params(catalog.MODELS, "resnet_cifar", {"depth": 56}, "teacher")
    assert resolved == {"depth": 56, "width": 16}


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("nope", {}, "student.arch"),
        ("resnet_cifar", {"depth": 21}, "student.params.depth"),
        ("mlp", {"hidden": "wide"}, "student.params.hidden"),
        ("mlp", {"dropout": 1.0}, "student.params.dropout"),
        ("cnn1d", {"channels": 0}, "student.params.channels"),
    ],
)
def test_errors_name_the_field(name: str, params: dict, param: str) -> None:
    with pytest.raises(SpecError) as info:
        catalog.resolve_params(catalog.MODELS, name, params, "student")
    assert info.value.param == param
