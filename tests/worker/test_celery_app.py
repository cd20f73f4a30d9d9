"""The Celery parent imports the pipeline once, before it forks a child per job, and makes no
CUDA call doing so (DESIGN section 7: a CUDA context does not survive a fork)."""

import json
import subprocess
import sys

# Spies on every way torch reaches the CUDA driver, then runs the worker's start-up hooks the
# way `celery worker` does in its parent process.
PARENT_START = """
import json, sys, torch
calls = []
def spy(module, name):
    real = getattr(module, name, None)
    if real is None:  # a CPU-only build has no driver entry points
        return
    def called(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)
    setattr(module, name, called)
for name in ("_cuda_getDeviceCount", "_cuda_init"):
    spy(torch._C, name)
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device"):
    spy(torch.cuda, name)
from celery import signals
from worker.celery_app import app
signals.worker_init.send(sender=None)
print(json.dumps({
    "preloaded": [m for m in ("worker.pipeline", "torch._dynamo") if m in sys.modules],
    "cuda_calls": calls,
    "cuda_initialized": torch.cuda.is_initialized(),
}))
"""


def test_the_parent_preloads_the_pipeline_without_touching_cuda() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PARENT_START], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "preloaded": ["worker.pipeline", "torch._dynamo"],
        "cuda_calls": [],
        "cuda_initialized": False,
    }


def test_the_worker_runs_the_pool_that_replaces_an_exited_child_at_once() -> None:
    """`celery -A worker.celery_app worker` (compose, the tests' workers) without `-P` uses the
    configured pool: the prefork pool whose exited child is replaced as soon as the exit is
    reported, not at the next 5 s timer (celery/celery#9588; benchmarks/celery_gap.py)."""
    from celery import concurrency
    from celery.concurrency import asynpool, prefork

    from worker.celery_app import app
    from worker.celery_pool import PromptAsynPool, TaskPool

    pool = concurrency.get_implementation(app.conf.worker_pool)
    assert pool is TaskPool and issubclass(pool, prefork.TaskPool)
    assert pool.Pool is PromptAsynPool
    assert PromptAsynPool._event_process_exit is not asynpool.AsynPool._event_process_exit
    assert app.conf.worker_max_tasks_per_child == 1
