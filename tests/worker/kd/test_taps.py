"""Feature taps see the named layers during distillation and leave no trace afterwards."""

import pytest
import torch

from worker.kd import FeatureTaps
from worker.models import build_model


def test_taps_keep_the_named_layers_outputs_and_go_away() -> None:
    model = build_model("resnet_cifar", {"depth": 8}, (3, 8, 8), 5).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        before = model(x)
    with FeatureTaps(model, ["stem", "stage3"]) as taps:
        with torch.no_grad():
            during = model(x)
        features = taps.take()
        assert taps.take() == {}  # taken once
    assert set(features) == {"stem", "stage3"}
    assert features["stem"].shape == (2, 16, 8, 8)
    assert features["stage3"].shape == (2, 64, 2, 2)
    assert torch.equal(before, during)
    assert all(not m._forward_hooks for m in model.modules())


def test_an_unknown_layer_is_named() -> None:
    model = build_model("cnn1d", {"channels": 4}, (40,), 3)
    with pytest.raises(KeyError, match="no layer 'conv9'; its layers: conv1, conv2, conv3"):
        FeatureTaps(model, ["conv9"])


def test_no_model_or_no_names_taps_nothing() -> None:
    with FeatureTaps(None, ["x"]) as taps:
        assert taps.take() == {}
