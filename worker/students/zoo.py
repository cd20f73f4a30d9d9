"""`zoo`: a zoo arch (`arch`, `params`) built by the job's task for its data, random init."""

from typing import Any

from torch import nn

from worker.students.registry import STUDENT_SOURCES, StudentSource


@STUDENT_SOURCES.register("zoo")
class ZooStudent(StudentSource):
    name = "zoo"

    def build(self) -> nn.Module:
        context = self.context
        return context.task.build_model(self.spec["arch"], self.spec["params"], context.data)

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "arch": self.spec["arch"], "params": self.spec["params"]}
