"""Loading Hugging Face models the way the worker always does: offline (the service never
reaches the Hub), never with remote code, weights from safetensors (or a GGUF file,
dequantised) only; float32, eval mode."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before transformers (and huggingface_hub) are imported: the service never reaches the Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

OFFLINE: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}


def transformers() -> Any:
    """The transformers module, quiet (no progress bars, errors only)."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


@dataclass
class CausalLm:
    """A causal LM and its tokenizer; `files` what it was loaded from (named in errors)."""

    tokenizer: Any
    model: Any  # a transformers PreTrainedModel with a language-model head
    files: str


class LoadError(ValueError):
    """transformers cannot load the upload; the message says what failed."""


def load_folder(folder: Path) -> CausalLm:
    """A save_pretrained folder's causal LM (AutoModelForCausalLM) and tokenizer."""
    library = transformers()
    try:
        tokenizer = library.AutoTokenizer.from_pretrained(str(folder), **OFFLINE)
    except Exception as exc:
        raise LoadError(f"transformers cannot load the tokenizer: {exc}") from None
    try:
        model = library.AutoModelForCausalLM.from_pretrained(
            str(folder), use_safetensors=True, **OFFLINE
        )
    except Exception as exc:
        raise LoadError(f"transformers cannot load the model: {exc}") from None
    return CausalLm(tokenizer, model.float().eval(), folder.name)


def load_gguf(path: Path) -> CausalLm:
    """A GGUF file's causal LM and tokenizer, dequantised to float32 by transformers' GGUF
    support (the gguf package), then copied into an ordinary float model of the same config
    (transformers marks a GGUF-loaded model quantised and refuses to cast it; a student made
    from the copy saves and trains like any other)."""
    import torch

    library = transformers()
    where = {"gguf_file": path.name, **OFFLINE}
    try:
        tokenizer = library.AutoTokenizer.from_pretrained(str(path.parent), **where)
    except Exception as exc:
        raise LoadError(f"transformers cannot read the GGUF file's tokenizer: {exc}") from None
    try:
        model = library.AutoModelForCausalLM.from_pretrained(
            str(path.parent), dtype=torch.float32, **where
        )
    except Exception as exc:
        raise LoadError(f"transformers cannot load the GGUF model: {exc}") from None
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = library.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    return CausalLm(tokenizer, plain.eval(), path.name)
