"""Student sources (`student.source`): what a job's student is before distillation trains it,
the spec each one takes, and what it can do: the teacher sources it needs (a student made from
the teacher's own architecture needs a teacher that has one) and the formats it exports to.
`worker/students/` implements each under the same name, one file each.

- `zoo` (the default): a zoo arch (`arch`, `params`), random init from the job's seed.
- `from_teacher`: the teacher's own Hugging Face model made shallower, each kept layer
  initialised from the teacher's (DistilBERT's recipe, Minitron's depth pruning); for a causal
  LM its MLP, attention heads and hidden size optionally narrower (Minitron's width pruning,
  by weight magnitude or by activations on training windows); embeddings, final norm and head
  are the teacher's, so is the tokenizer. With an `hf` sequence classifier (classification)
  the student is that classifier with fewer encoder layers: DistilBERT's student.
- `config`: the teacher's Hugging Face config with overrides (fewer layers, narrower), random
  init from the job's seed; the teacher's tokenizer.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from distillery.types.catalog.base import BOTH_TASKS, LANGUAGE_MODEL, Entry
from distillery.types.fields import JsonObject, Strict, Text

# Teacher sources that hand over a Hugging Face model (a causal LM or, `hf` only, a sequence
# classifier: its config, weights, tokenizer).
CAUSAL_LM_TEACHERS = ("hf", "gguf")
ZOO_FORMATS = ("safetensors", "onnx", "torchscript")
# A Hugging Face student: the zipped save_pretrained folder, its weights alone, ONNX.
HF_FORMATS = ("hf", "safetensors", "onnx")


class StudentSpecBase(Strict):
    """What every student spec has: its source."""

    source: str


class ZooStudent(StudentSpecBase):
    """A zoo arch, random init from the job's seed."""

    source: Literal["zoo"] = "zoo"
    arch: Text
    params: JsonObject = Field(default_factory=dict)


LayerIndex = Annotated[int, Field(ge=0, le=1023)]


class FromTeacherStudent(StudentSpecBase):
    """The teacher's Hugging Face model (causal LM or sequence classifier) with only some of
    its layers, each initialised from the teacher's layer of that index."""

    source: Literal["from_teacher"]
    layers: (
        Annotated[list[LayerIndex], Field(min_length=1, max_length=1024)] | Literal["every_other"]
    ) = Field(
        default="every_other",
        description="the teacher layers the student keeps, in order (0-based), or "
        '"every_other" (0, 2, 4, ...: DistilBERT\'s recipe)',
    )
    intermediate: Annotated[int, Field(ge=1, le=1_048_576)] | None = Field(
        default=None,
        description="the MLP width each kept layer keeps: its neurons whose weights have the "
        "largest L2 norm (Minitron's width pruning); null: the teacher's width",
    )
    heads: Annotated[int, Field(ge=1, le=65_536)] | None = Field(
        default=None,
        description="the attention heads each kept layer keeps, a multiple of the teacher's "
        "key/value heads: in each group sharing one, the heads whose weights have the largest "
        "L2 norm, each as wide as the teacher's (Llama, Qwen, Mistral); null: all of them",
    )
    hidden: Annotated[int, Field(ge=1, le=1_048_576)] | None = Field(
        default=None,
        description="the hidden size (embedding width) the student keeps: the channels whose "
        "weights have the largest L2 norm over the embeddings, head and every projection "
        "(Minitron's embedding pruning; Llama, Qwen, Mistral); null: the teacher's",
    )
    importance: Literal["magnitude", "activation"] = Field(
        default="magnitude",
        description="how `intermediate`, `heads` and `hidden` rank what they keep: the L2 "
        'norm of the weights, or "activation": Minitron\'s activation-based importance, '
        "measured on the kept layers reading the first 64 training windows (each neuron's "
        "mean |activation|, each head's mean output norm, each hidden channel's mean |value| "
        "after every norm)",
    )
    random_init_baseline: bool = Field(
        default=False,
        description="also train the student's architecture from random init on the same "
        "tokens with next-token CE only (the report's `random_init`), beside the baseline "
        "that starts from the same pruned weights",
    )


class ConfigStudent(StudentSpecBase):
    """The teacher's Hugging Face config with `overrides`, random init from the job's seed."""

    source: Literal["config"]
    overrides: JsonObject = Field(
        default_factory=dict,
        description='config fields to change, e.g. {"num_hidden_layers": 4, '
        '"hidden_size": 256}; the vocabulary stays the teacher\'s',
    )


@dataclass(frozen=True)
class StudentSourceEntry(Entry):
    # The teacher sources it can be built from (None: any).
    teachers: tuple[str, ...] | None = None
    # The export formats (`export`) it gives.
    formats: tuple[str, ...] = ZOO_FORMATS
    # It names a zoo arch (`arch`, `params`).
    arch: bool = False

    def capabilities(self) -> dict[str, Any]:
        return {
            "teachers": None if self.teachers is None else list(self.teachers),
            "formats": list(self.formats),
            "arch": self.arch,
        }


DEFAULT_STUDENT_SOURCE = "zoo"

STUDENT_SOURCES: dict[str, StudentSourceEntry] = {
    entry.name: entry
    for entry in (
        StudentSourceEntry(
            "zoo",
            "A zoo arch (`arch`, `params`), random init from the job's seed.",
            ZooStudent,
            tasks=BOTH_TASKS,
            arch=True,
        ),
        StudentSourceEntry(
            "from_teacher",
            "The teacher's own Hugging Face model (a causal LM, or a sequence classifier: "
            "DistilBERT's student) with fewer layers, each kept layer, the embeddings and the "
            "head initialised from the teacher's; the teacher's tokenizer.",
            FromTeacherStudent,
            tasks=BOTH_TASKS,
            teachers=CAUSAL_LM_TEACHERS,
            formats=HF_FORMATS,
        ),
        StudentSourceEntry(
            "config",
            "The teacher's Hugging Face config with overrides, random init from the job's "
            "seed; the teacher's tokenizer.",
            ConfigStudent,
            tasks=(LANGUAGE_MODEL,),
            teachers=CAUSAL_LM_TEACHERS,
            formats=HF_FORMATS,
        ),
    )
}
