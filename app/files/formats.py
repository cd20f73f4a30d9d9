"""The registry of upload formats: which extensions each purpose accepts, the options each
format takes at upload, and the check that reads it.

Each format is one module in `app/files/checkers/` that calls `register(...)` when imported, so a
new format is one new file. Checkers import their heavy libraries (onnx, Pillow) inside the
check, which runs in a child process (`python -m app.files.check`), never in the API.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.plugins import import_all
from app.settings import Settings
from app.store.base import file_key

PURPOSES = ("dataset", "teacher", "logits")
# Formats that unpickle (or may unpickle) when loaded: named in the refusal of such an upload.
PICKLE_EXTENSIONS = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib")
# The most classes a dataset or a logits file may have.
MAX_CLASSES = 100_000


class CheckError(Exception):
    """The upload is refused; the message names the array, column, row or member at fault."""


class OptionError(ValueError):
    """An upload option (form field) is invalid; `param` names the field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass
class CheckContext:
    """What a check gets: the upload as a local file and a folder for the arrays it prepares."""

    file_id: str
    path: Path
    options: dict[str, Any]
    settings: Settings
    workdir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    # What the tenant's storage quota has left for this file's prepared arrays (None: no cap).
    # A small upload can expand a lot (JPEGs decoded to pixels), so the cap is checked before
    # anything is written.
    max_prepared_bytes: int | None = None
    prepared_bytes: int = 0

    def output(self, name: str, nbytes: int) -> Path:
        """A local path to write the prepared file `name` (about `nbytes` bytes) to; it is
        stored under key(name). Refused when the prepared arrays would exceed the quota."""
        self.prepared_bytes += nbytes
        if self.max_prepared_bytes is not None and self.prepared_bytes > self.max_prepared_bytes:
            raise CheckError(
                f"the prepared arrays would take {self.prepared_bytes} bytes, more than the "
                f"{max(self.max_prepared_bytes, 0)} bytes left in the tenant's storage quota"
            )
        path = self.workdir / name
        self.outputs[name] = path
        return path

    def key(self, name: str) -> str:
        return file_key(self.file_id, name)

    def array(self, name: str, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
        """The prepared array `<name>.npy`, to fill in place (counted against the quota)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize + 128
        path = self.output(f"{name}.npy", nbytes)
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)

    def saved(self, **arrays: np.memmap | None) -> dict[str, str]:
        """Flush the filled arrays; their storage keys by name (for `info["arrays"]`)."""
        keys = {}
        for name, array in arrays.items():
            if array is not None:
                array.flush()
                keys[name] = self.key(f"{name}.npy")
        return keys


def no_options(raw: dict[str, str]) -> dict[str, Any]:
    for name in raw:
        raise OptionError(name, f"{name} does not apply to this file format")
    return {}


@dataclass(frozen=True)
class Format:
    name: str
    purpose: str
    extensions: tuple[str, ...]
    # Returns File.info (the prepared-file contract); raises CheckError to refuse the file.
    check: Callable[[CheckContext], dict[str, Any]]
    # Turns the upload's format options (raw form fields) into File.options.
    parse_options: Callable[[dict[str, str]], dict[str, Any]] = no_options


# The package of checkers, one module per format, each calling `register` when imported.
CHECKERS = "app.files.checkers"
_FORMATS: list[Format] = []
_loaded = False


def register(fmt: Format) -> Format:
    _FORMATS.append(fmt)
    return fmt


def formats() -> list[Format]:
    global _loaded
    if not _loaded:
        import_all(CHECKERS)
        _loaded = True
    return list(_FORMATS)


def extensions(purpose: str) -> list[str]:
    return [ext for f in formats() if f.purpose == purpose for ext in f.extensions]


def find(purpose: str, filename: str) -> Format | None:
    """The format of an upload of `purpose` named `filename` (by extension), or None."""
    lower = filename.lower()
    for fmt in formats():
        if fmt.purpose == purpose and any(lower.endswith(ext) for ext in fmt.extensions):
            return fmt
    return None


def get(purpose: str, name: str) -> Format:
    for fmt in formats():
        if (fmt.purpose, fmt.name) == (purpose, name):
            return fmt
    raise KeyError(f"no {purpose} format {name!r}")
