"""Learning tasks (`spec.task`), one file each, registered under the spec's names."""

from app.plugins import import_all
from worker.learning_tasks.registry import TASKS, Task, task_for

import_all(__name__)

__all__ = ["TASKS", "Task", "task_for"]
