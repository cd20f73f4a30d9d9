"""validate: build the teacher, load the data (cut into the teacher's tokens where it brings
a tokenizer), build the student, and check the job can run (names the spec field that is
wrong, before any training)."""

from distillery.types.catalog import AUGMENTATIONS, TEACHER_SOURCES
from distillery.types.catalog.base import SpecError
from worker.augment import build_augmentation
from worker.data import DatasetMismatch, prepare
from worker.job_context import JobContext
from worker.kd import build_method
from worker.models import InputMismatch, count_params
from worker.precision import describe, plan_precision
from worker.stages.base import Stage
from worker.stages.soft_labels import teacher_runs_online
from worker.teachers import TeacherContext, build_teacher


class Validate(Stage):
    name = "validate"

    @staticmethod
    def prepare(job: JobContext) -> None:
        """Build what labelling needs: the teacher (its weights loaded) and the data. A worker
        labelling a shard of another worker's job (worker/shard_worker.py) builds only this."""
        spec = job.spec
        context = TeacherContext(
            spec=spec["teacher"],
            data=None,
            settings=job.settings,
            device=job.device,
            workdir=job.workdir,
            seed=job.seed,
            dataset_name=spec["dataset"]["name"],
            tenant=job.tenant,
            task=job.task,
        )
        teacher = build_teacher(context)
        try:
            data = prepare(
                spec["dataset"],
                job.seed,
                job.settings,
                job.tenant,
                labels=job.task.labels,
                vocabulary=teacher.vocabulary(),
            )
        except DatasetMismatch as exc:
            raise SpecError(exc.param, str(exc)) from None
        job.built["data"] = context.data = data
        job.task.prepared(data)
        job.built["precision"] = plan_precision(
            job.settings, job.device, data.input_shape, job.arithmetic
        )
        teacher.validate()
        job.built["teacher"] = teacher
        augment = spec["dataset"].get("augment")
        if augment is not None and data.modality not in AUGMENTATIONS[augment["kind"]].modalities:
            raise SpecError(
                "dataset.augment",
                f"{data.modality} datasets take no {augment['kind']!r} augmentation (it "
                f"transforms {', '.join(AUGMENTATIONS[augment['kind']].modalities)})",
            )
        try:
            job.built["augmentation"] = build_augmentation(
                spec["dataset"].get("augment"), data.input_shape, data.std
            )
        except DatasetMismatch as exc:
            raise SpecError(exc.param, str(exc)) from None

    def run(self, job: JobContext) -> None:
        spec = job.spec
        self.prepare(job)
        teacher = job.teacher
        source = TEACHER_SOURCES[teacher.name]
        lends = source.lends_module(job.task.name)
        if lends != (teacher.module is not None):  # the catalog decides; they must agree
            raise RuntimeError(
                f"teacher source {teacher.name!r} built {'a' if teacher.module else 'no'} PyTorch "
                f"module for {job.task.name}; its catalog entry says {lends}"
            )
        try:
            student = job.build_student()
        except InputMismatch as exc:
            raise SpecError("student.arch", f"{exc} (dataset {spec['dataset']['name']})") from None
        job.built["student"] = student
        if not source.module and job.augmentation is not None:
            raise SpecError(
                "dataset.augment",
                f"a teacher from {teacher.name!r} cannot label new views of the examples; "
                "augmentation needs a zoo model teacher ('train' or 'weights')",
            )
        method = build_method(job.distill_settings)
        if not source.module and teacher_runs_online(job):
            raise SpecError(
                "distill.method" if method.teacher_layers() else "distill.soft_labels",
                f"a teacher from {teacher.name!r} has no PyTorch model to run online",
            )
        self._describe(job)

    def _describe(self, job: JobContext) -> None:
        data, teacher = job.data, job.teacher
        t_params = count_params(teacher.module) if teacher.module is not None else None
        s_params = count_params(job.student)
        job.event(
            "info",
            f"{len(data.train)} train, {len(data.val)} val, {len(data.test)} test, "
            f"{len(data.transfer)} transfer examples "
            f"({'in memory' if data.in_memory else 'read from disk'}); "
            f"teacher from {teacher.name}"
            + (f" ({t_params} params)" if t_params is not None else "")
            + f", student {s_params} params; device {job.device}"
            + (f" ({job.precision.autocast})" if job.precision.autocast else ""),
            {
                "train": len(data.train),
                "val": len(data.val),
                "test": len(data.test),
                "transfer": len(data.transfer),
                "in_memory": data.in_memory,
                "teacher_source": teacher.name,
                "teacher_params": t_params,
                "student_params": s_params,
                "device": str(job.device),
                "precision": describe(job.precision),
            },
        )
        if data.transfer_dropped:
            job.event(
                "warning",
                f"dropped {data.transfer_dropped} transfer examples that are also validation "
                "or test examples",
                {"transfer_dropped": data.transfer_dropped},
            )
        if t_params is not None and s_params >= t_params:
            job.event("warning", "the student is not smaller than the teacher")
