"""`config`: the teacher's Hugging Face config with `overrides` (fewer layers, narrower), random
init from the job's seed (worker/causal_lm/shrink.py); the teacher's tokenizer."""

from typing import Any

from torch import nn

from worker.causal_lm.module import TokenLm
from worker.causal_lm.shrink import from_config
from worker.students.registry import STUDENT_SOURCES, StudentSource


@STUDENT_SOURCES.register("config")
class ConfigStudent(StudentSource):
    name = "config"

    def build(self) -> nn.Module:
        model = self.teacher_lm().model
        return TokenLm(from_config(model, self.spec["overrides"], self.context.seed))

    def describe(self) -> dict[str, Any]:
        model_type = self.teacher_lm().model.config.model_type
        return {"source": self.name, "model_type": model_type, "overrides": self.spec["overrides"]}
