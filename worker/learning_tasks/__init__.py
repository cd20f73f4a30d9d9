"""Learning tasks (`spec.task`), one file each, registered under the spec's names."""

from worker.learning_tasks.registry import TASKS, Task, task_for
from worker.plugins import import_all

import_all(__name__)

__all__ = ["TASKS", "Task", "task_for"]
