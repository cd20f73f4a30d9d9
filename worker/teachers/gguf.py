"""`gguf`: an uploaded GGUF file (app/files/checkers/gguf_model.py), a causal LM and its
tokenizer, loaded offline by transformers' GGUF support and dequantised to float32
(worker/causal_lm/loading.py); it labels like any causal-LM teacher (worker/teachers/causal_lm.py).
"""

import os
import tempfile
from pathlib import Path

from worker.causal_lm.loading import CausalLm, load_gguf
from worker.teachers.causal_lm import CausalLmTeacher
from worker.teachers.registry import TEACHER_SOURCES

WANTED = "a GGUF file (.gguf) of a causal LM with its tokenizer"


@TEACHER_SOURCES.register("gguf")
class GgufTeacher(CausalLmTeacher):
    name = "gguf"

    def load(self) -> CausalLm:
        self.upload = self.uploaded("teacher", "gguf", WANTED)
        self.path = self.upload.local_path()
        # transformers reads a GGUF file by its name in a folder: the cached upload, linked
        # under a name of its own so no other file of the cache is looked at.
        self.folder = tempfile.TemporaryDirectory(prefix="gguf-")
        link = Path(self.folder.name) / "model.gguf"
        os.symlink(self.path, link)
        return load_gguf(link)

    def sha256(self) -> str:
        return self.upload.sha256

    def model_bytes(self) -> int:
        return self.path.stat().st_size
