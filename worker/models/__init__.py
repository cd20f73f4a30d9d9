"""The model zoo: implementations registered under the catalog's names."""

from worker.models import cnn, gpt, mlp, resnet_cifar, text  # noqa: F401  (registers the archs)
from worker.models.registry import (
    MODELS,
    InputMismatch,
    Tokens,
    build_model,
    count_params,
    feature_modules,
)

__all__ = ["MODELS", "InputMismatch", "Tokens", "build_model", "count_params", "feature_modules"]
