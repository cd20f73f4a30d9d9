"""Every architecture builds from its catalog defaults and maps raw inputs to logits."""

import pytest
import torch

from distillery.types import catalog
from worker.models import InputMismatch, build_model, count_params, feature_modules

SHAPES = {
    "mlp": (64,),
    "cnn1d": (40,),
    "cnn2d": (1, 8, 8),
    "resnet_cifar": (3, 32, 32),
    "text_transformer": (24,),
    "text_cnn": (24,),
}


CLASSIFIERS = [name for name, e in catalog.MODELS.items() if "classification" in e.tasks]


@pytest.mark.parametrize("arch", CLASSIFIERS)
def test_default_model_gives_logits(arch: str) -> None:
    params = catalog.resolve_params(catalog.MODELS, arch, {}, "student")
    model = build_model(arch, params, SHAPES[arch], 7).eval()
    shape = (3, *SHAPES[arch])
    reads_bytes = catalog.MODELS[arch].inputs == "bytes"
    x = torch.randint(0, 256, shape, dtype=torch.uint8) if reads_bytes else torch.randn(shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 7)


def test_cnn1d_matches_the_mnist1d_reference_sizes() -> None:
    """The MNIST-1D ConvBase: 28,298 parameters at 64 channels, 858 at 8 (DESIGN's example)."""
    assert count_params(build_model("cnn1d", {"channels": 64}, (40,), 10)) == 28298
    assert count_params(build_model("cnn1d", {"channels": 8}, (40,), 10)) == 858


@pytest.mark.parametrize(("depth", "params"), [(20, 272_474), (56, 855_770)])
def test_resnet_cifar_has_the_published_sizes(depth: int, params: int) -> None:
    # He et al. 2016 report 0.27M and 0.85M for resnet20 and resnet56 on CIFAR-10.
    model = build_model("resnet_cifar", {"depth": depth, "width": 16}, (3, 32, 32), 10)
    assert count_params(model) == params


def test_normalisation_is_part_of_the_model() -> None:
    mean, std = torch.tensor(5.0), torch.tensor(2.0)
    model = build_model("mlp", {"hidden": []}, (4,), 2, mean, std).eval()
    x = torch.randn(3, 4) * 2 + 5
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - 5) / 2))
    assert set(model.state_dict()) >= {"mean", "std"}


@pytest.mark.parametrize(
    ("arch", "shape"),
    [("cnn2d", (64,)), ("resnet_cifar", (40,)), ("cnn1d", (3, 8, 8)), ("cnn1d", (2,))],
)
def test_input_that_does_not_fit_the_arch_is_refused(arch: str, shape: tuple) -> None:
    params = catalog.resolve_params(catalog.MODELS, arch, {}, "student")
    with pytest.raises(InputMismatch):
        build_model(arch, params, shape, 10)


@pytest.mark.parametrize(
    ("arch", "params", "shape"),
    [
        ("mlp", {"hidden": [8, 4, 2]}, (6,)),
        ("mlp", {"hidden": [], "dropout": 0.1}, (6,)),
        ("mlp", {"hidden": [8], "dropout": 0.5}, (6,)),
        ("cnn1d", {"channels": 4}, (40,)),
        ("cnn2d", {"channels": [4, 8, 8]}, (1, 8, 8)),
        ("resnet_cifar", {"depth": 8}, (3, 8, 8)),
        ("resnet_cifar", {"depth": 20}, (3, 8, 8)),
    ],
)
def test_the_catalog_lists_each_models_layers(
    arch: str, params: dict, shape: tuple[int, ...]
) -> None:
    resolved = catalog.resolve_params(catalog.MODELS, arch, params, "student")
    model = build_model(arch, resolved, shape, 3)
    assert list(feature_modules(model)) == catalog.model_layers(arch, resolved)


def test_layer_taps_leave_the_weights_names_as_they_were() -> None:
    """Weights uploaded for a zoo arch before the taps existed still load."""
    model = build_model("cnn1d", {"channels": 4}, (40,), 3)
    assert [k for k in model.state_dict() if k.startswith("net.")] == [
        f"net.{layer}.{p}"
        for layer in ("conv1", "conv2", "conv3", "head")
        for p in ("weight", "bias")
    ]


@pytest.mark.parametrize("arch", list(catalog.MODELS))
def test_the_catalogs_misfit_rule_refuses_what_the_builder_refuses(arch: str) -> None:
    """The API refuses at POST /v1/jobs (catalog rule) exactly the inputs the worker's validate
    would (the builder), so no spec the API accepted fails later for its shape."""
    params = catalog.resolve_params(
        catalog.MODELS, arch, {"context": 8} if arch == "gpt" else {}, "student"
    )
    shapes = [(1,), (2,), (3,), (8,), (9,), (40,), (2, 8), (1, 8, 8), (3, 8, 8), (1, 2, 3, 4)]
    classes = 256 if arch == "gpt" else 10
    for shape in shapes:
        misfit = catalog.MODELS[arch].input_misfit(params, list(shape))
        try:
            build_model(arch, params, shape, classes)
            built = True
        except InputMismatch:
            built = False
        assert built == (misfit is None), (shape, misfit)
