"""A teacher as a Hugging Face model directory in a .zip: config.json, *.safetensors weights and
the tokenizer's files (tokenizer.json, vocab.txt, ...), at the archive's root or in its one
top-level folder: a sequence classifier (*ForSequenceClassification, `task` classification)
or a causal LM (*ForCausalLM, `task` language_model). The worker loads it with transformers'
Auto classes, offline and never with remote code.

Checked here without transformers: pickled weights (pytorch_model.bin, *.pt, ...) and code
(*.py, ...) anywhere in the archive are refused, and so is `auto_map` (remote code) in a JSON
config; each safetensors header is checked like a teacher .safetensors upload. The model's files
are extracted flat, by name, as the prepared files model/<name> (`info["files"]`); members in
sub-folders and files the model does not need (README.md, tf_model.h5, ...) stay in the archive.
"""

import json
import re
import shutil
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.files.checkers import safetensors_file
from app.files.checkers.image_zip import _is_junk, _safe_parts
from app.files.formats import (
    MAX_CLASSES,
    PICKLE_EXTENSIONS,
    CheckContext,
    CheckError,
    Format,
    register,
)

MAX_MEMBERS = 1000
# JSON files are parsed in memory (tokenizer.json of a large vocabulary is tens of MB).
MAX_JSON_BYTES = 256 * 1024**2
CODE_EXTENSIONS = (".py", ".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib")
# What from_pretrained reads of a model and its tokenizer; anything else stays in the archive.
EXTRACTED_EXTENSIONS = (".json", ".safetensors", ".txt", ".model", ".spm", ".tiktoken")
TOKENIZER_NAMES = ("tokenizer.json", "vocab.txt", "vocab.json")
TOKENIZER_EXTENSIONS = (".model", ".spm", ".tiktoken")
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
PREFIX = "model/"
# What a causal LM's class is called (GPT-2's head model is the exception to *ForCausalLM).
CAUSAL_LM_CLASSES = ("ForCausalLM", "LMHeadModel")
LISTED = 20


def _members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """(member, path parts) of every file, pickles and code refused, the one top-level folder
    (a zip of the model's folder) taken off."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise CheckError(f"the archive has {len(infos)} members, over the limit of {MAX_MEMBERS}")
    found = []
    for info in infos:
        parts = _safe_parts(info)
        if info.is_dir() or not parts or _is_junk("/".join(parts)):
            continue
        lower = parts[-1].lower()
        if lower.endswith(PICKLE_EXTENSIONS):
            raise CheckError(
                f"member {info.filename!r} is a pickle-based file, never loaded: save the model "
                "with save_pretrained(..., safe_serialization=True) and leave out "
                "pytorch_model.bin, *.pt, *.pth, *.ckpt and other pickles (training_args.bin too)"
            )
        if lower.endswith(CODE_EXTENSIONS):
            raise CheckError(
                f"member {info.filename!r} is code; remote code is never run: use a model class "
                "that ships with transformers and leave the .py files out"
            )
        found.append((info, parts))
    if found and all(len(p) > 1 for _, p in found) and len({p[0] for _, p in found}) == 1:
        found = [(info, parts[1:]) for info, parts in found]
    return found


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, OSError) as exc:
        raise CheckError(f"member {info.filename!r} cannot be read: {exc}") from None


def _extract(ctx: CheckContext, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Path:
    """Write the member to the prepared file model/<name>; returns its local path."""
    path = ctx.output(PREFIX + name, info.file_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with archive.open(info) as source, path.open("wb") as target:
            shutil.copyfileobj(source, target, 1024**2)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, OSError) as exc:
        raise CheckError(f"member {info.filename!r} cannot be read: {exc}") from None
    return path


def _json(info: zipfile.ZipInfo, data: bytes) -> Any:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckError(f"member {info.filename!r} is not valid JSON: {exc}") from None
    if isinstance(value, dict) and "auto_map" in value:
        raise CheckError(
            f"member {info.filename!r} has an auto_map (classes in the model's own code); "
            "remote code is never run: use a model class that ships with transformers"
        )
    return value


def _num_labels(config: dict[str, Any]) -> int:
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    num_labels = config.get("num_labels", 2)  # transformers' default
    if not isinstance(num_labels, int) or isinstance(num_labels, bool):
        raise CheckError(f"config.json: num_labels must be a whole number, got {num_labels!r}")
    return num_labels


def _labels(config: dict[str, Any], count: int) -> list[str] | None:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        raise CheckError("config.json: id2label keys must be class indices") from None
    if sorted(by_index) != list(range(count)):
        raise CheckError(f"config.json: id2label keys must be 0..{count - 1}")
    return [by_index[i] for i in range(count)]


def _whole(config: dict[str, Any], *names: str) -> int | None:
    """The first of `names` the config has, a positive whole number (None: none of them)."""
    for name in names:
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckError(f"config.json: {name} must be a positive whole number, got {value!r}")
        return value
    return None


def _causal_lm(config: dict[str, Any], model_type: str, architectures: list[str]) -> dict:
    vocab = _whole(config, "vocab_size")
    if vocab is None:
        raise CheckError("config.json: a causal LM needs its vocab_size")
    return {
        "model_type": model_type,
        "architectures": architectures,
        "task": "language_model",
        "vocab_size": vocab,
        "layers": _whole(config, "num_hidden_layers", "n_layer"),
        "context_length": _whole(config, "max_position_embeddings", "n_positions"),
    }


def _check_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise CheckError("config.json is not a JSON object")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise CheckError("config.json has no model_type (save the model with save_pretrained)")
    architectures = config.get("architectures")
    if architectures is not None and (
        not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures)
    ):
        raise CheckError("config.json: architectures must be a list of class names")
    if architectures and any(a.endswith(CAUSAL_LM_CLASSES) for a in architectures):
        return _causal_lm(config, model_type, architectures)
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise CheckError(
            f"config.json: the model is a {', '.join(architectures)}, neither a sequence "
            "classifier (*ForSequenceClassification) nor a causal LM (*ForCausalLM)"
        )
    problem = config.get("problem_type")
    if problem not in (None, "single_label_classification"):
        raise CheckError(
            f"config.json: problem_type is {problem!r}; a teacher gives one class per text "
            "(single_label_classification)"
        )
    num_labels = _num_labels(config)
    if not 2 <= num_labels <= MAX_CLASSES:
        raise CheckError(
            f"config.json: the model has {num_labels} labels; a classifier needs 2 to {MAX_CLASSES}"
        )
    return {
        "model_type": model_type,
        "architectures": architectures or [],
        "task": "classification",
        "num_labels": num_labels,
        "class_names": _labels(config, num_labels),
    }


def check(ctx: CheckContext) -> dict[str, Any]:
    try:
        archive = zipfile.ZipFile(ctx.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckError(f"not a readable .zip archive: {exc}") from None
    with archive:
        found = _members(archive)
        root: dict[str, zipfile.ZipInfo] = {}
        ignored: list[str] = []
        for info, parts in found:
            name = parts[0]
            if len(parts) > 1 or not name.lower().endswith(EXTRACTED_EXTENSIONS):
                ignored.append("/".join(parts))
                continue
            if not SAFE_NAME.fullmatch(name):
                raise CheckError(
                    f"member {info.filename!r}: a model file's name may hold only letters, "
                    "digits, '.', '_' and '-'"
                )
            if name in root:
                raise CheckError(f"member {info.filename!r} is in the archive twice")
            root[name] = info
        if "config.json" not in root:
            raise CheckError(
                "no config.json at the archive's root or in its one top-level folder: zip the "
                "folder save_pretrained wrote (config.json, *.safetensors, tokenizer files)"
            )
        weights = sorted(n for n in root if n.endswith(".safetensors"))
        if not weights:
            raise CheckError(
                "no *.safetensors weights next to config.json: save the model with "
                "save_pretrained(..., safe_serialization=True); pickled weights are never loaded"
            )
        tokenizer = sorted(
            n for n in root if n in TOKENIZER_NAMES or n.lower().endswith(TOKENIZER_EXTENSIONS)
        )
        if not tokenizer:
            raise CheckError(
                "no tokenizer next to config.json (tokenizer.json, vocab.txt, vocab.json or a "
                "sentencepiece .model): save the tokenizer with save_pretrained into the folder"
            )
        ratio_limit = ctx.settings.max_archive_ratio
        total_size = total_compressed = 0
        for name, info in root.items():
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > ratio_limit:
                raise CheckError(
                    f"member {info.filename!r} is compressed {ratio:.0f}:1, over the limit of "
                    f"{ratio_limit:g}:1 (zip bomb?)"
                )
            if name.endswith(".json") and info.file_size > MAX_JSON_BYTES:
                raise CheckError(
                    f"member {info.filename!r} has {info.file_size} bytes, over the limit of "
                    f"{MAX_JSON_BYTES} for a JSON file"
                )
            total_size += info.file_size
            total_compressed += info.compress_size
        if total_size / max(total_compressed, 1) > ratio_limit:
            raise CheckError(
                f"the model's files are compressed {total_size / max(total_compressed, 1):.0f}:1 "
                f"overall, over the limit of {ratio_limit:g}:1 (zip bomb?)"
            )
        # The small files first: a bad config is refused before any weights are written.
        described: dict[str, Any] = {}
        for name in sorted(n for n in root if n.endswith(".json")):
            value = _json(root[name], _read(archive, root[name]))
            if name == "config.json":
                described = _check_config(value)
        files: dict[str, str] = {}
        params = 0
        for name in sorted(root, key=lambda n: (n.endswith(".safetensors"), n)):
            path = _extract(ctx, archive, root[name], name)
            files[name] = ctx.key(PREFIX + name)
            if name.endswith(".safetensors"):
                try:
                    header = safetensors_file.check(replace(ctx, path=path))
                except CheckError as exc:
                    raise CheckError(f"member {root[name].filename!r}: {exc}") from None
                params += int(header["params"])
    return {
        "format": "hf",
        **described,
        "tokenizer": tokenizer,
        "weights": weights,
        "params": params,
        "files": files,
        "ignored": sorted(ignored)[:LISTED],
        "ignored_count": len(ignored),
    }


register(Format("hf", "teacher", (".zip",), check))
