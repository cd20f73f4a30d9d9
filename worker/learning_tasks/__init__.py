"""Learning tasks (`spec.task`), one file each, registered under the spec's names."""

from worker.learning_tasks import classification, language_model  # noqa: F401  (registers)
from worker.learning_tasks.registry import TASKS, Task, task_for

__all__ = ["TASKS", "Task", "task_for"]
