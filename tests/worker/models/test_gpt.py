"""The byte-level `gpt`: tokens in, next-byte logits out, causal, its layers as the catalog
names them."""

import pytest
import torch

from distillery.types import catalog
from distillery.types.catalog.models import GptParams
from worker.models import InputMismatch, Tokens, count_params, feature_modules
from worker.models.gpt import build_gpt


def gpt(**params: int) -> torch.nn.Module:
    resolved = catalog.resolve_params(catalog.MODELS, "gpt", params, "student")
    return Tokens(build_gpt(GptParams(**resolved), (16,), 256)).eval()


def test_logits_at_a_position_depend_only_on_the_bytes_up_to_it() -> None:
    torch.manual_seed(0)
    model = gpt(layers=2, heads=2, dim=16, context=16)
    tokens = torch.randint(0, 256, (3, 16))
    changed = tokens.clone()
    changed[:, 9:] = torch.randint(0, 256, (3, 7))
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert a.shape == (3, 16, 256)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_float_tokens_are_the_same_bytes() -> None:
    """Training batches carry byte values as float32; the model reads them as token ids."""
    model = gpt(layers=1, heads=1, dim=8, context=16)
    tokens = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(tokens), model(tokens.float()))


def test_the_head_is_the_token_embedding() -> None:
    model = gpt(layers=1, heads=2, dim=16, context=16)
    names = set(model.state_dict())
    assert "net.token.weight" in names and not any("head" in n for n in names)
    # Embeddings (256 + 16 positions) x 16, one block (LayerNorms, qkv, proj, 4x MLP), final LN.
    block = 2 * 32 + (16 * 48 + 48) + (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16)
    assert count_params(model) == (256 + 16) * 16 + block + 32


def test_the_catalog_names_its_blocks() -> None:
    resolved = catalog.resolve_params(catalog.MODELS, "gpt", {"layers": 3}, "student")
    model = gpt(layers=3)
    assert list(feature_modules(model)) == catalog.model_layers("gpt", resolved)
    assert catalog.model_layers("gpt", resolved) == ["block1", "block2", "block3"]


@pytest.mark.parametrize(
    ("shape", "classes", "why"),
    [((16,), 10, "vocabulary of 256"), ((64,), 256, "context 32"), ((4, 4), 256, "(time,)")],
)
def test_data_that_does_not_fit_is_refused(shape: tuple, classes: int, why: str) -> None:
    params = GptParams(layers=1, heads=1, dim=8, context=32)
    with pytest.raises(InputMismatch, match=why.replace("(", r"\(").replace(")", r"\)")):
        build_gpt(params, shape, classes)


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(catalog.SpecError, match="multiple of heads"):
        catalog.resolve_params(catalog.MODELS, "gpt", {"dim": 30, "heads": 4}, "student")
