"""`train`: a zoo arch the pipeline trains on the labelled train split (pretrain_teacher)."""

from app.store.base import sha256_of
from worker.stage_cost import StageCost
from worker.teachers.registry import TEACHER_SOURCES, StageRunner, training_cost
from worker.teachers.torch_teacher import TorchTeacher

TEACHER_FILE = "teacher.safetensors"


@TEACHER_SOURCES.register("train")
class TrainedTeacher(TorchTeacher):
    name = "train"

    def validate(self) -> None:
        # Normalised with the train split's statistics, baked into the model.
        self.module = self.build(self.data.mean, self.data.std)

    def pretrain(self, runner: StageRunner) -> None:
        if runner.outputs.finished(self.module, "teacher"):
            return
        runner.trainer.train_with_labels(self.module, self.spec["train"], "teacher")
        runner.outputs.save_output(self.module, "teacher")

    def pretraining_cost(self) -> StageCost:
        return training_cost(self.spec["train"], self.data)

    def sha256(self) -> str:
        return sha256_of(self.context.workdir / TEACHER_FILE)

    def weights_bytes(self) -> int:
        return (self.context.workdir / TEACHER_FILE).stat().st_size
