"""The student-source registry and what every source provides: `build()`, the student's
initial weights (the job's seed is set just before, so the baseline starts from the very same
weights), `random_init()` where a source offers that baseline, and `describe()`, what the
report and the manifest say the student is."""

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from distillery.types.catalog import SpecError
from worker.causal_lm.loading import CausalLm
from worker.data import PreparedData
from worker.hf_classifier import TextClassifier
from worker.learning_tasks import Task
from worker.registry import Registry
from worker.teachers import TeacherSource


@dataclass
class StudentContext:
    spec: dict[str, Any]  # the job's resolved `student`
    data: PreparedData
    task: Task
    teacher: TeacherSource
    seed: int


class StudentSource:
    name: ClassVar[str]

    def __init__(self, context: StudentContext) -> None:
        self.context = context
        self.spec = context.spec

    def build(self) -> nn.Module:
        raise NotImplementedError

    def random_init(self) -> nn.Module | None:
        """The student's architecture from random init (the job's seed set just before), when
        the spec asks for that baseline too; None otherwise."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, **{k: v for k, v in self.spec.items() if k != "source"}}

    def teacher_classifier(self) -> TextClassifier | None:
        """The teacher's Hugging Face sequence classifier, when it is one."""
        module = self.context.teacher.module
        return module if isinstance(module, TextClassifier) else None

    def teacher_hf(self) -> Any:
        """The teacher's transformers model: its classifier's, or its causal LM."""
        classifier = self.teacher_classifier()
        return classifier.hf if classifier is not None else self.teacher_lm().model

    def teacher_lm(self) -> CausalLm:
        """The teacher's Hugging Face causal LM, which this student is made from."""
        lm = self.context.teacher.causal_lm
        if lm is None:  # the API refuses such a job; a stored one may still name it
            raise SpecError(
                "student.source",
                f"a student from {self.name!r} is made from the teacher's own model; a teacher "
                f"from {self.context.teacher.name!r} has none",
            )
        return lm


STUDENT_SOURCES: Registry[type[StudentSource]] = Registry("student source")
