"""Uploaded files made the way the files service leaves them (the prepared-file contract):
a File row, ready, of the default tenant, with its upload and prepared .npy arrays in the store.
"""

import io
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from app.db import session_scope
from app.files.splits import DESCRIPTION
from app.models import DEFAULT_TENANT, File, FileStatus
from app.settings import Settings
from app.store.base import file_key
from app.store.local import LocalStore


def _store(settings: Settings) -> LocalStore:
    return LocalStore(settings.artifact_url)


def _put_bytes(store: LocalStore, key: str, data: bytes, tmp: Path) -> tuple[int, str]:
    path = tmp / secrets.token_hex(6)
    path.write_bytes(data)
    return store.put_file(key, path, move=True)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def add_file(
    settings: Settings,
    tmp: Path,
    *,
    purpose: str,
    fmt: str,
    upload: bytes,
    arrays: dict[str, np.ndarray],
    info: dict[str, Any],
) -> str:
    file_id = "file_" + secrets.token_hex(8)
    store = _store(settings)
    size, digest = _put_bytes(store, file_key(file_id, "upload"), upload, tmp)
    keys = {}
    prepared = 0
    for name, array in arrays.items():
        keys[name] = file_key(file_id, f"{name}.npy")
        prepared += _put_bytes(store, keys[name], _npy(array), tmp)[0]
    if keys:
        info = {**info, "arrays": keys}
    with session_scope(settings.database_url) as session:
        session.add(
            File(
                id=file_id,
                tenant=DEFAULT_TENANT,
                purpose=purpose,
                filename=f"upload.{fmt}",
                format=fmt,
                options={},
                bytes=size,
                sha256=digest,
                status=FileStatus.READY,
                info=info,
                storage_key=file_key(file_id, "upload"),
                prepared_bytes=prepared,
            )
        )
    return file_id


def add_dataset(
    settings: Settings,
    tmp: Path,
    x: np.ndarray,
    y: np.ndarray | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    class_names: list[str] | None = None,
    num_classes: int | None = None,
) -> str:
    arrays = {"x": x}
    for name, array in (("y", y), ("x_test", x_test), ("y_test", y_test)):
        if array is not None:
            arrays[name] = array
    if y is not None and num_classes is None:
        num_classes = int(y.max()) + 1
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    info = {
        "format": "npz",
        "rows": len(x),
        "test_rows": 0 if x_test is None else len(x_test),
        "input_shape": list(x.shape[1:]),
        "dtype": str(x.dtype),
        "labelled": y is not None,
        "num_classes": num_classes,
        "class_names": class_names,
        "test_split": DESCRIPTION if x_test is None else "the file's own x_test / y_test",
    }
    return add_file(
        settings,
        tmp,
        purpose="dataset",
        fmt="npz",
        upload=buffer.getvalue(),
        arrays=arrays,
        info=info,
    )


def add_teacher(settings: Settings, tmp: Path, path: Path, fmt: str) -> str:
    """A teacher upload (safetensors or onnx): the worker reads the upload itself."""
    info: dict[str, Any] = {"format": fmt, "params": None}
    return add_file(
        settings, tmp, purpose="teacher", fmt=fmt, upload=path.read_bytes(), arrays={}, info=info
    )


def add_logits(
    settings: Settings, tmp: Path, logits: np.ndarray, logits_test: np.ndarray | None = None
) -> str:
    arrays = {"logits": logits}
    if logits_test is not None:
        arrays["logits_test"] = logits_test
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    info = {
        "format": "npz",
        "rows": len(logits),
        "num_classes": logits.shape[1],
        "test_rows": 0 if logits_test is None else len(logits_test),
        "dtype": str(logits.dtype),
    }
    return add_file(
        settings,
        tmp,
        purpose="logits",
        fmt="npz",
        upload=buffer.getvalue(),
        arrays=arrays,
        info=info,
    )


def clusters(
    n: int, shape: tuple[int, ...] = (12,), classes: int = 3, seed: int = 0, uint8: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Separable Gaussian clusters (uint8: pixel-like values 0..255)."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(123).normal(size=(classes, *shape)) * 2.0
    y = rng.integers(0, classes, size=n).astype(np.int64)
    x = means[y] + rng.normal(size=(n, *shape))
    if uint8:
        return np.clip(x * 30 + 128, 0, 255).astype(np.uint8), y
    return x.astype(np.float32), y
