"""The byte-level text classifiers: padding changes nothing, an empty text still gets logits,
and the transformer's attention really reads across the text."""

import pytest
import torch

from app.files.text_examples import encode
from distillery.types.catalog.models import TextCnnParams, TextTransformerParams
from worker.models.text import TextCnn, TextTransformer

TEXTS = ["hello world", "", "日本語のテキスト", "a"]


def models(length: int) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    transformer = TextTransformer(TextTransformerParams(layers=2, heads=2, dim=16), length, 3)
    torch.manual_seed(0)
    cnn = TextCnn(TextCnnParams(dim=8, channels=8, kernels=[2, 3]), 3)
    return [transformer.eval(), cnn.eval()]


@pytest.mark.parametrize("which", [0, 1], ids=["text_transformer", "text_cnn"])
def test_logits_do_not_depend_on_the_padding(which: int) -> None:
    short, _ = encode(TEXTS, 32)
    long, _ = encode(TEXTS, 64)
    model_short, model_long = models(32)[which], models(64)[which]
    if which == 0:  # the same weights; the longer model has more position rows
        state = model_short.state_dict()
        model_long.position.weight.data[:32] = state["position.weight"]
        state = {k: v for k, v in state.items() if k != "position.weight"}
        model_long.load_state_dict(state, strict=False)
    with torch.no_grad():
        a = model_short(torch.from_numpy(short))
        b = model_long(torch.from_numpy(long))
        floats = model_short(torch.from_numpy(short).float())  # training batches are floats
    assert a.shape == (4, 3) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, floats)


def test_the_transformer_reads_the_whole_text() -> None:
    model = models(16)[0]
    x, _ = encode(["abcdefgh", "abcdefgz"], 16)
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    assert not torch.allclose(logits[0], logits[1])
