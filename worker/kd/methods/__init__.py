"""Distillation methods, one file each, registered under the catalog's names."""

from worker.kd.methods import at, dkd, fitnets, jsd, kd, reverse_kl, seqkd  # noqa: F401
from worker.kd.methods.base import METHODS, Method, Outputs, build_method

__all__ = ["METHODS", "Method", "Outputs", "build_method"]
