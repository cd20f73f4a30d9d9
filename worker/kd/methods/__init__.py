"""Distillation methods, one file each (found by discovery, registered under the catalog's names,
distillery.types.catalog.methods)."""

from app.plugins import import_all
from worker.kd.methods.base import METHODS, Method, Outputs, build_method

import_all(__name__)

__all__ = ["METHODS", "Method", "Outputs", "build_method"]
