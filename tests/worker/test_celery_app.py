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
