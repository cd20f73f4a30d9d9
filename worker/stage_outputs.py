"""A job's stage outputs: the weights a stage leaves in the job's work folder (written whole or
not at all, copied to a remote store), and reusing them when an earlier attempt finished the
stage."""

from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import load_file
from torch import nn

from worker import export, worksync

if TYPE_CHECKING:
    from worker.job_context import JobContext


class StageOutputs:
    def __init__(self, job: "JobContext") -> None:
        self.job = job

    def push(self, path: Path) -> None:
        """Copy a work file to a remote store (no-op for a local one), while this worker still
        holds the job (LeaseLost otherwise)."""
        if self.job.store.remote:
            self.job.control.ensure_held()
        worksync.push(self.job.store, self.job.job_id, path)

    def save_output(self, model: nn.Module, name: str) -> Path:
        """Write a stage's weights (whole or not at all) and copy them to a remote store."""
        path = self.job.workdir / f"{name}.safetensors"
        export.save_safetensors(model, path)
        self.push(path)
        return path

    def load(self, model: nn.Module, name: str) -> bool:
        """Load a stage's output into `model`, if it was written; False if not."""
        path = self.job.workdir / f"{name}.safetensors"
        if not path.exists():
            return False
        model.load_state_dict(load_file(str(path), device=str(self.job.device)))
        return True

    def finished(self, model: nn.Module, name: str) -> bool:
        """Load a stage's output if an earlier attempt finished it."""
        if not self.load(model, name):
            return False
        self.job.event("info", f"{self.job.stage}: reusing {name} weights from an earlier attempt")
        self.job.progress.restart_eta()
        return True
