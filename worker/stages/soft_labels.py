"""soft_labels: the teacher's logits for every distillation example, written once to the
soft-label store (or reused from it); none when the teacher runs online."""

from worker.job_context import JobContext
from worker.kd import build_method
from worker.softlabels import SoftLabelStore, StoredLogits, TopKLogits
from worker.stages.base import Stage, inference_work
from worker.stages.validate import teacher_runs_online


class SoftLabels(Stage):
    name = "soft_labels"

    def work(self, job: JobContext) -> float:
        return inference_work(job)

    def run(self, job: JobContext) -> None:
        distill = job.spec["distill"]
        if teacher_runs_online(job):
            reads_layers = bool(build_method(distill).teacher_layers())
            why = f" ({distill['method']} reads its layers)" if reads_layers else ""
            job.event("info", f"soft labels: the teacher runs online at every step{why}")
            return
        # No stochastic augmentation yet, so "auto" means the store.
        data, teacher = job.data, job.teacher
        store = SoftLabelStore.for_settings(job.settings)
        top_k = distill.get("soft_label_top_k")  # specs stored before the field lack it
        key = store.key(teacher.sha256(), data.fingerprint(), teacher.preprocessing, top_k)
        shape = (len(data.distill), data.num_classes)
        array, reused = store.get_or_write(key, shape, teacher.distill_logits)
        kept = f"top-{array.k} " if isinstance(array, TopKLogits) else ""
        job.event(
            "info",
            f"soft labels {'reused from' if reused else 'written to'} the store "
            f"({array.shape[0]} x {array.shape[1]}, {kept}{array.dtype})",
            {"key": key, "reused": reused, "teacher_source": teacher.name, "top_k": top_k},
        )
        job.stored_logits = StoredLogits(array, job.device)
