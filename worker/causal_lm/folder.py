"""A student as the folder transformers loads: save_pretrained's config.json, model.safetensors
and generation_config.json, with the teacher's tokenizer, zipped under one top-level folder
(what AutoModelForCausalLM / AutoTokenizer .from_pretrained(folder) read, offline)."""

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

FOLDER = "student"


def save_zip(model: Any, tokenizer: Any, path: Path) -> list[str]:
    """Write the zip to `path` (complete when it exists); the names of the folder's files."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / FOLDER
        model.save_pretrained(str(folder), safe_serialization=True)
        tokenizer.save_pretrained(str(folder))
        names = sorted(p.name for p in folder.iterdir())
        partial = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                archive.write(folder / name, f"{FOLDER}/{name}")
        os.replace(partial, path)
    return names
