"""The model zoo: implementations registered under the catalog's names."""

from worker.models.registry import (
    MODELS,
    InputMismatch,
    Tokens,
    build_model,
    count_params,
    feature_modules,
)
from worker.plugins import import_all

import_all(__name__)

__all__ = ["MODELS", "InputMismatch", "Tokens", "build_model", "count_params", "feature_modules"]
