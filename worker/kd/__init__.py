"""Distillation: the losses, the methods (one plug-in file each) and the feature taps."""

from worker.kd.losses import kd_loss
from worker.kd.methods import METHODS, Method, Outputs, build_method
from worker.kd.taps import FeatureTaps

__all__ = ["METHODS", "FeatureTaps", "Method", "Outputs", "build_method", "kd_loss"]
