"""`weights`: a zoo arch with uploaded safetensors weights; nothing is trained.

The file holds the arch's tensors either as the service's models name them (`net.<...>`, with
optional `mean` and `std`: the input normalisation) or as the bare network names them
(`<...>`, e.g. `1.weight` for the mlp's first Linear). Without `mean` / `std` the teacher gets
the dataset's raw inputs, exactly as an ONNX teacher does.
"""

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from distillery.types.catalog import SpecError
from worker.teachers.registry import TEACHER_SOURCES
from worker.teachers.torch_teacher import TorchTeacher
from worker.uploads import UploadedFile

PARAM = "teacher.file_id"
NORMALISATION = ("mean", "std")


@TEACHER_SOURCES.register("weights")
class WeightsTeacher(TorchTeacher):
    name = "weights"
    upload: UploadedFile

    def validate(self) -> None:
        self.upload = self.uploaded(
            "teacher", "safetensors", "safetensors; an ONNX model is a teacher with source 'onnx'"
        )
        path = self.upload.local_path()
        with safe_open(str(path), framework="pt") as f:
            shapes = {name: list(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
        state = load_file(str(path))
        mean, std = (state.get(k) for k in NORMALISATION)
        if (mean is None) != (std is None):
            raise SpecError(PARAM, "the teacher weights have one of 'mean' and 'std' but not both")
        self.module = self.build(mean, std)
        net = self.module.net
        assert isinstance(net, torch.nn.Module)
        prefix = "net." if any(name.startswith("net.") for name in shapes) else ""
        expected = {prefix + k: list(v.shape) for k, v in net.state_dict().items()}
        missing = sorted(set(expected) - set(shapes))
        unexpected = sorted(set(shapes) - set(expected) - set(NORMALISATION))
        wrong = {k: (shapes[k], v) for k, v in expected.items() if k in shapes and shapes[k] != v}
        if missing or unexpected or wrong:
            problems = []
            if missing:
                problems.append(f"missing {missing}")
            if unexpected:
                problems.append(f"unexpected {unexpected}")
            if wrong:
                problems.append(f"wrong shape (file, arch) {wrong}")
            raise SpecError(
                PARAM,
                f"teacher weights do not fit {self.spec['arch']} {self.spec['params']}: "
                + ", ".join(problems),
            )
        net.load_state_dict({k.removeprefix(prefix): state[k] for k in expected})
        self.module.to(self.context.device).eval()
        try:
            with torch.no_grad():
                self.module(self.data.test.head(2).to(self.context.device))
        except RuntimeError as exc:  # e.g. a mean / std that does not broadcast
            raise SpecError(PARAM, f"the teacher weights do not run on the data: {exc}") from None

    def sha256(self) -> str:
        return self.upload.sha256

    def weights_bytes(self) -> int:
        return self.upload.bytes
