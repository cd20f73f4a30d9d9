"""Distillation methods, registered under the catalog's names (`distill.method`)."""

from worker.kd.losses import kd_loss
from worker.registry import Registry

METHODS: Registry = Registry("distillation method")
METHODS.register("kd")(kd_loss)

__all__ = ["METHODS", "kd_loss"]
