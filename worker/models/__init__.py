"""The model zoo: implementations registered under the catalog's names."""

from app.plugins import import_all
from worker.models.registry import (
    MODELS,
    InputMismatch,
    Tokens,
    build_model,
    count_params,
    feature_modules,
)

import_all(__name__)

__all__ = ["MODELS", "InputMismatch", "Tokens", "build_model", "count_params", "feature_modules"]
