"""soft_labels: the teacher's logits for every distillation example, written once to the
soft-label store (or reused from it); none when the teacher runs online.

Under augmentation the store keeps the teacher's logits of every view the student will see,
epoch after epoch (TinyViT's fast distillation): the views are drawn from counters keyed by
(job seed, epoch, position), so the distill stage replays exactly the views the teacher
labelled. `soft_labels: "auto"` stores them when they fit the store's byte budget and runs the
teacher online otherwise."""

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from worker.batch import Batch
from worker.job_context import JobContext
from worker.kd import build_method
from worker.label_shards import Labelling, label_in_shards
from worker.softlabels import SoftLabelStore, StoredLogits, TopKLogits, bytes_per_example
from worker.stages.base import Stage, StageCost
from worker.train import epoch_order

# Views labelled per teacher forward when the store is filled (any size gives the same views).
LABEL_CHUNK = 1024


@dataclass(frozen=True)
class SoftLabelPlan:
    online: bool
    views: bool  # stored per augmented view (epochs x examples rows), not per example
    why: str
    rows: int = 0  # teacher forwards that fill the store (0 when it runs online)
    bytes: int = 0  # what they take in the store


def plan(job: JobContext) -> SoftLabelPlan:
    """Where the distill stage gets the teacher's logits, and why (for the event)."""
    distill = job.spec["distill"]
    method = build_method(job.distill_settings)
    if method.teacher_layers():
        return SoftLabelPlan(True, False, f"{distill['method']} reads its layers")
    if distill["soft_labels"] == "online":
        return SoftLabelPlan(True, False, "asked for")
    views = job.augmentation is not None
    rows = len(job.data.distill) * (distill["epochs"] if views else 1)
    needed = (
        rows
        * job.task.positions(job.data)
        * bytes_per_example(
            job.data.num_classes,
            distill.get("soft_label_top_k"),
            distill.get("soft_label_tail_samples") or 0,
        )
    )
    budget = job.settings.soft_label_store_bytes
    # Only a teacher that can run online is a fallback (an ONNX or logits teacher is stored).
    if distill["soft_labels"] == "auto" and needed > budget and job.teacher.module is not None:
        what = f"{rows} augmented views" if views else f"{rows} examples"
        return SoftLabelPlan(
            True,
            False,
            f"the logits of {what} need {needed} bytes, over the store's {budget} "
            "(DISTILLERY_SOFT_LABEL_STORE_BYTES)",
        )
    return SoftLabelPlan(False, views, "", rows, needed)


def teacher_runs_online(job: JobContext) -> bool:
    return plan(job).online


class SoftLabels(Stage):
    name = "soft_labels"

    def cost(self, job: JobContext) -> StageCost:
        where = plan(job)
        if not build_method(job.distill_settings).reads_teacher_logits or where.online:
            return StageCost()
        shard_rows = job.settings.soft_label_shard_rows
        return StageCost(
            teacher_inferred=float(where.rows),
            soft_label_bytes=where.bytes,
            soft_label_shards=-(-where.rows // shard_rows) if where.rows > shard_rows else 1,
        )

    def run(self, job: JobContext) -> None:
        method = job.distill_settings["method"]
        if not build_method(job.distill_settings).reads_teacher_logits:
            job.event("info", f"soft labels: none ({method} learns from the teacher's text)")
            return
        where = plan(job)
        if where.online:
            job.event("info", f"soft labels: the teacher runs online at every step ({where.why})")
            return
        distill = job.spec["distill"]
        top_k = distill.get("soft_label_top_k")  # specs stored before the field lack it
        tail_samples = distill.get("soft_label_tail_samples")
        labels = labelling(job, where)
        positions = labels.positions
        if labels.rows > job.settings.soft_label_shard_rows:
            array, reused = label_in_shards(job, labels)
        else:
            store = SoftLabelStore.for_settings(job.settings)

            def chunks() -> Iterator["np.ndarray | torch.Tensor"]:
                # One row per position: an example's rows follow each other (its tokens).
                for chunk in labels.logits(0, labels.rows):
                    yield chunk.reshape(-1, labels.classes)

            array, reused = store.get_or_write(labels.key, labels.shape, chunks)
        key, teacher = labels.key, job.teacher
        kept = ""
        if isinstance(array, TopKLogits):
            kept = f"top-{array.k} " + (
                f"+ {array.tail_samples} tail samples " if array.tail_samples else ""
            )
        views = f" of {distill['epochs']} epochs of augmented views" if where.views else ""
        views += f", a row per position ({positions} an example)" if positions > 1 else ""
        job.event(
            "info",
            f"soft labels{views} {'reused from' if reused else 'written to'} the store "
            f"({array.shape[0]} x {array.shape[1]}, {kept}{array.dtype})",
            {
                "key": key,
                "reused": reused,
                "teacher_source": teacher.name,
                "top_k": top_k,
                "tail_samples": tail_samples,
                "augmented_views": where.views,
            },
        )
        job.stored_logits = StoredLogits(
            array, job.device, len(job.data.distill) if where.views else None, positions
        )


def labelling(job: JobContext, where: SoftLabelPlan) -> Labelling:
    """The store entry the job's soft labels are (its key, rows and shape) and the teacher's
    logits of any range of its forwards: the examples', or each epoch's augmented views'."""
    distill = job.spec["distill"]
    data, teacher = job.data, job.teacher
    preprocessing = teacher.preprocessing
    forwards = len(data.distill)

    def logits(start: int, stop: int) -> Iterator["np.ndarray | torch.Tensor"]:
        return teacher.distill_logits(slice(start, stop))

    if where.views:
        preprocessing += ":" + _views_descriptor(job)
        forwards *= distill["epochs"]

        def logits(start: int, stop: int) -> Iterator["np.ndarray | torch.Tensor"]:
            return _view_logits(job, start, stop)

    key = SoftLabelStore.key(
        teacher.sha256(),
        data.fingerprint(),
        preprocessing,
        distill.get("soft_label_top_k"),
        distill.get("soft_label_tail_samples"),
    )
    return Labelling(key, forwards, job.task.positions(data), data.num_classes, logits)


def _views_descriptor(job: JobContext) -> str:
    """What decides the views: the augmentation, the seed and the number of epochs (the
    order of each epoch follows from the seed and the examples, already in the key)."""
    distill = job.spec["distill"]
    return json.dumps(
        {"augment": job.spec["dataset"]["augment"], "seed": job.seed, "epochs": distill["epochs"]},
        sort_keys=True,
    )


def _view_logits(job: JobContext, start: int, stop: int) -> Iterator[torch.Tensor]:
    """The teacher's logits of views start..stop of all epochs' views, in the order the
    student meets them (view `epoch * examples + position`)."""
    module = job.teacher.module
    assert module is not None  # validate checks it
    module.eval()
    x = job.data.distill
    n = len(x)
    try:
        for epoch in range(start // n, -(-stop // n)):
            order = epoch_order(n, n, job.seed, epoch)
            first, last = max(start - epoch * n, 0), min(stop - epoch * n, n)
            for begin in range(first, last, LABEL_CHUNK):
                positions = torch.arange(begin, min(begin + LABEL_CHUNK, last))
                batch = Batch(order[positions], epoch, positions, None, order)
                with torch.no_grad(), job.precision.forward():
                    yield module(job.views(x, batch).inputs).float().cpu()
    finally:
        x.release()
