"""teacher_text: for a method that learns from the teacher's text (`seqkd`), the teacher
rewrites every distillation window: the first `prompt_bytes` bytes stay, the rest are sampled
one byte at a time at `sample_temperature` (seeded by the job's seed, so a rerun writes the same
text). The windows go to `teacher_text.npy` in the work folder (reused by a resumed job) and
replace the distillation examples and labels (JobContext.distill_set); the baseline still
learns the real text."""

import os

import numpy as np
import torch

from worker.data.prepare import Examples
from worker.data.rows import as_rows
from worker.job_context import JobContext
from worker.kd import build_method
from worker.stages.base import Stage, StageCost

OUTPUT = "teacher_text.npy"
BATCH = 256  # windows written at once


def settings_of(job: JobContext) -> dict | None:
    return build_method(job.distill_settings).teacher_text()


class TeacherText(Stage):
    name = "teacher_text"

    def applies(self, job: JobContext) -> bool:
        return settings_of(job) is not None

    def cost(self, job: JobContext) -> StageCost:
        # Each written byte is a teacher forward over the window so far: about half a window.
        return StageCost(teacher_inferred=len(job.data.distill) * job.data.input_shape[0] / 2)

    def run(self, job: JobContext) -> None:
        params = settings_of(job)
        assert params is not None
        path = job.workdir / OUTPUT
        if path.exists():
            windows = np.load(path)
            job.event("info", "teacher_text: reusing the teacher's text from an earlier attempt")
        else:
            windows = self._write(job, params)
            partial = path.with_name(path.name + ".partial.npy")
            np.save(partial, windows)
            os.replace(partial, path)
            job.outputs.push(path)
            job.event(
                "info",
                f"teacher_text: the teacher rewrote {len(windows)} windows after their first "
                f"{params['prompt_bytes']} bytes (T={params['sample_temperature']})",
                {"windows": len(windows), **params},
            )
        job.built["distill_set"] = (
            Examples(as_rows(np.ascontiguousarray(windows[:, :-1])), True),
            torch.from_numpy(windows[:, 1:].astype(np.int64)),
        )

    def _write(self, job: JobContext, params: dict) -> np.ndarray:
        module = job.teacher.module
        assert module is not None  # language_model teachers are zoo models
        module.eval()
        x = job.data.distill
        context = job.data.input_shape[0]
        prompt = min(params["prompt_bytes"], context)
        generator = torch.Generator().manual_seed(job.seed)
        out = np.empty((len(x), context + 1), dtype=np.uint8)
        batches = range(0, len(x), BATCH)
        job.progress.start_epochs(len(batches))  # a batch of windows counts as an epoch here
        for done, start in enumerate(batches, start=1):
            index = torch.arange(start, min(start + BATCH, len(x)))
            tokens = x.batch(index, job.device)[:, :prompt].long()
            with torch.no_grad():
                while tokens.shape[1] < context + 1:
                    logits = module(tokens[:, -context:])[:, -1].float()
                    probs = torch.softmax(logits / params["sample_temperature"], dim=-1)
                    sampled = torch.multinomial(probs.cpu(), 1, generator=generator)
                    tokens = torch.cat([tokens, sampled.to(tokens.device)], dim=1)
            out[start : start + len(index)] = tokens.cpu().numpy().astype(np.uint8)
            job.control.check()
            job.progress.epoch_done(done)
            job.control.progress(job.progress.snapshot())
        x.release()
        return out
