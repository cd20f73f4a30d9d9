"""The Celery prefork pool, replacing a child that exits as soon as it has exited
(celery/celery#9588), configured as `worker_pool` in worker/celery_app.py.

Each job runs in a child of its own (`worker_max_tasks_per_child=1`), so a child exits after
every job, and the next job waits for its replacement. Celery notices a child's exit when the
child's end of a pipe closes, and then starts a replacement, but only for children it finds
exited (waitpid). The pipe closes as the child exits, a moment before the kernel reports the
exit: when Celery looks in that moment, it finds nothing to replace, and stops watching the
child; the replacement then waits for the pool's maintenance timer, up to 5 s later (measured:
3.4-5.2 s idle between most jobs, benchmarks/README.md). The issue is open upstream with no
setting that avoids it. Here, a child whose pipe closed but whose exit is not reported yet is
looked at again every few milliseconds until it is, and replaced then.
"""

import time
from typing import Any

from celery.concurrency import asynpool, prefork

# How often a child whose pipe closed is looked at again, and for how long at most (after
# that, the pool's own 5 s timer replaces it, as before).
REAP_POLL_SECONDS = 0.005
REAP_WAIT_SECONDS = 2.0


class PromptAsynPool(asynpool.AsynPool):
    def _event_process_exit(self, hub: Any, proc: Any) -> None:
        # Called when the child's sentinel pipe is readable: the child is exiting.
        self._untrack_child_process(proc, hub)
        self._replace_once_reaped(hub, proc, time.monotonic() + REAP_WAIT_SECONDS)

    def _replace_once_reaped(self, hub: Any, proc: Any, deadline: float) -> None:
        try:
            running = proc.exitcode is None
        except ValueError:  # closed: the pool has dealt with it already
            running = False
        if running and time.monotonic() < deadline:
            hub.call_later(REAP_POLL_SECONDS, self._replace_once_reaped, hub, proc, deadline)
            return
        self.maintain_pool()


class TaskPool(prefork.TaskPool):
    """The prefork pool (`-P prefork`) with PromptAsynPool."""

    Pool = PromptAsynPool
