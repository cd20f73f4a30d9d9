"""tune: `distill.temperature: "auto"` / `kd_weight: "auto"` searched on the validation split
(worker/kd/auto.py says which values, in what order, and which wins).

Each candidate is a short distillation, with the job's method and soft labels (from the store
when they are stored), of the student from its initial weights; each epoch is recorded as a
`tune` metric (epochs numbered on across candidates, with the candidate's number, temperature
and kd_weight) and a candidate that trails the best so far is stopped early. The student is put
back to its initial weights, the chosen values become the distillation's (JobContext
.distill_settings), and the search goes in the report (`tuning`). Candidates tried are saved
after each (tuning.json), so a resumed job does not try them again. Runs only for "auto".
"""

import copy
import json
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from worker.batch import Batch
from worker.job_context import JobContext
from worker.kd import auto
from worker.kd.schedules import TemperatureSchedule
from worker.stages.base import Stage, StageCost, student_training
from worker.stages.distill import method_run
from worker.stages.soft_labels import teacher_runs_online
from worker.train import train

TUNING_FILE = "tuning.json"
TUNED = "tuned"  # JobContext.built: the values distillation uses


class StopCandidate(Exception):
    """The candidate trails the best one: no use training it further."""


def search_for(job: JobContext) -> auto.Search:
    higher = job.task.selection[1]
    path = job.workdir / TUNING_FILE
    saved = json.loads(path.read_text()) if path.exists() else {}
    return auto.Search.from_json(job.spec["distill"], higher, saved)


class Tune(Stage):
    name = "tune"

    def applies(self, job: JobContext) -> bool:
        return auto.is_auto(job.spec["distill"])

    def cost(self, job: JobContext) -> StageCost:
        """Every candidate run to the end (early stopping can only make it less)."""
        epochs = search_for(job).size() * auto.search_epochs(job.spec["distill"]["epochs"])
        return student_training(job, epochs, teacher_online=teacher_runs_online(job))

    def run(self, job: JobContext) -> None:
        search = search_for(job)
        if search.tried:
            tried = len(search.tried)
            job.event("info", f"tune: reusing {tried} candidates an earlier attempt tried")
        epochs = auto.search_epochs(job.spec["distill"]["epochs"])
        job.progress.start_epochs(search.size() * epochs)
        student = job.student
        initial = copy.deepcopy(student.state_dict())
        while (values := search.next()) is not None:
            candidate = auto.Candidate(*values)
            job.built[TUNED] = {"temperature": values[0], "kd_weight": values[1]}
            student.load_state_dict(initial)
            self._try(job, search, candidate, epochs)
            search.tried.append(candidate)
            path = job.workdir / TUNING_FILE
            path.write_text(json.dumps(search.as_json()))
            job.outputs.push(path)
        student.load_state_dict(initial)
        chosen = search.chosen()
        job.built[TUNED] = {"temperature": chosen.temperature, "kd_weight": chosen.kd_weight}
        metric, higher = job.task.selection
        job.built["tuning"] = {
            "metric": f"val_{metric}",
            "epochs_per_candidate": epochs,
            "chosen": {
                "temperature": chosen.temperature,
                "kd_weight": chosen.kd_weight,
                "ce_weight": chosen.ce_weight,
            },
            "candidates": search.as_json()["tried"],
        }
        job.event(
            "info",
            f"tune: chose temperature {chosen.temperature:g}, kd_weight {chosen.kd_weight:g} "
            f"(best val_{metric} {chosen.best(higher):.4f} of {len(search.tried)} candidates)",
            job.built["tuning"]["chosen"],
        )

    def _try(
        self, job: JobContext, search: auto.Search, candidate: auto.Candidate, epochs: int
    ) -> None:
        metric, _higher = job.task.selection
        index = len(search.tried)
        hooks = job.trainer.hooks()

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            score = values[f"val_{metric}"]
            candidate.scores.append(score)
            labelled = {
                **values,
                "candidate": index + 1,
                "temperature": candidate.temperature,
                "kd_weight": candidate.kd_weight,
            }
            hooks.on_epoch(index * epochs + epoch, labelled)
            judged = auto.judged_from(epochs) <= epoch < epochs
            if judged and search.trails(epoch, score):
                candidate.stopped_early = True
                raise StopCandidate

        settings: dict[str, Any] = {**job.distill_settings, "epochs": epochs}
        checkpoint = job.workdir / "tune.ckpt"
        checkpoint.unlink(missing_ok=True)  # each candidate starts afresh
        with method_run(job) as run:

            def batch_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
                student, teacher, labels = run.outputs(m, batch)
                assert batch.temperature is not None
                return run.method.loss(student, teacher, labels, temperature=batch.temperature)

            schedule = TemperatureSchedule({"kind": "constant"}, candidate.temperature, epochs)
            try:
                train(
                    run.model,
                    settings=settings,
                    num_examples=len(run.x),
                    batch_loss=batch_loss,
                    validate=job.trainer.validator(),
                    checkpoint_path=checkpoint,
                    hooks=replace(hooks, on_epoch=on_epoch, on_checkpoint=lambda _path: None),
                    seed=job.seed,
                    temperature=schedule,
                    precision=job.precision,
                )
            except StopCandidate:
                job.progress.epoch_done((index + 1) * epochs)
            finally:
                run.x.release()
                checkpoint.unlink(missing_ok=True)
