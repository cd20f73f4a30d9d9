"""A dataset .npz: arrays x, y, optional x_test, y_test, class_names (np.savez, no pickles)."""

import zipfile
from typing import Any

import numpy as np

from app.files import npyio, splits
from app.files.formats import MAX_CLASSES, CheckContext, CheckError, Format, register

ARRAYS = ("x", "y", "x_test", "y_test", "class_names")
MAX_CLASS_NAMES_BYTES = 16 * 1024 * 1024


def open_members(ctx: CheckContext, allowed: tuple[str, ...]) -> tuple[zipfile.ZipFile, dict]:
    """The archive and its members by array name; refuses non-.npy members, unknown names and
    members compressed past the archive ratio limit."""
    try:
        archive = zipfile.ZipFile(ctx.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckError(f"not a readable .npz (zip) archive: {exc}") from None
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        if not info.filename.endswith(".npy"):
            raise CheckError(
                f"member {info.filename!r} is not a .npy array; an .npz holds only .npy arrays "
                "(pickles are never loaded)"
            )
        name = info.filename[: -len(".npy")]
        if name not in allowed:
            raise CheckError(
                f"member {info.filename!r}: unknown array {name!r}; expected {', '.join(allowed)}"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > ctx.settings.max_archive_ratio:
            raise CheckError(
                f"member {info.filename!r} is compressed {ratio:.0f}:1, over the limit of "
                f"{ctx.settings.max_archive_ratio:g}:1 (zip bomb?)"
            )
        members[name] = info
    return archive, members


def member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> npyio.NpyHeader:
    with archive.open(info) as fp:
        header = npyio.read_header(fp, name)
    if header.header_bytes + header.data_bytes != info.file_size:
        raise CheckError(
            f"{name}: its header says shape {header.shape} of {header.dtype} "
            f"({header.data_bytes} bytes) but the member holds "
            f"{info.file_size - header.header_bytes} bytes of data"
        )
    return header


def _x_dtype(headers: dict[str, npyio.NpyHeader]) -> np.dtype[Any]:
    for name in ("x", "x_test"):
        header = headers.get(name)
        if header is None:
            continue
        if header.dtype.kind not in "biuf":
            raise CheckError(f"{name} must be numeric, not {header.dtype}")
        if len(header.shape) < 2 or 0 in header.shape[1:]:
            raise CheckError(
                f"{name} must have a row axis and a non-empty example shape, got {header.shape}"
            )
        if header.shape[0] == 0:
            raise CheckError(f"{name} has no rows")
    kinds = {headers[n].dtype for n in ("x", "x_test") if n in headers}
    if kinds == {np.dtype(np.uint8)}:
        return np.dtype(np.uint8)
    return np.dtype(np.float32)


def _check_labels(headers: dict[str, npyio.NpyHeader]) -> None:
    for name, x_name in (("y", "x"), ("y_test", "x_test")):
        header = headers.get(name)
        if header is None:
            continue
        if header.dtype.kind not in "iu":
            raise CheckError(f"{name} must hold integer class indices, not {header.dtype}")
        if len(header.shape) != 1:
            raise CheckError(f"{name} must be 1-D (one class index per row), got {header.shape}")
        rows = headers[x_name].shape[0]
        if header.shape[0] != rows:
            raise CheckError(f"{name} has {header.shape[0]} rows but {x_name} has {rows}")


def _class_names(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> list[str]:
    if info.file_size > MAX_CLASS_NAMES_BYTES:
        raise CheckError(f"class_names is larger than {MAX_CLASS_NAMES_BYTES} bytes")
    with archive.open(info) as fp:
        header = npyio.read_header(fp, "class_names")
        if header.dtype.kind not in "US" or len(header.shape) != 1:
            raise CheckError(
                f"class_names must be a 1-D array of strings, got {header.dtype} {header.shape}"
            )
        data = npyio.read_exact(fp, header.data_bytes, "class_names")
    values = np.frombuffer(data, dtype=header.dtype)
    names = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    if len(set(names)) != len(names):
        raise CheckError("class_names has duplicate names")
    return names


def check(ctx: CheckContext) -> dict[str, Any]:
    archive, members = open_members(ctx, ARRAYS)
    with archive:
        if "x" not in members:
            raise CheckError("the .npz has no array 'x' (expected x, y, optional x_test, y_test)")
        headers = {
            name: member_header(archive, info, name)
            for name, info in members.items()
            if name != "class_names"
        }
        x_dtype = _x_dtype(headers)
        shape = headers["x"].shape[1:]
        if "x_test" in headers and headers["x_test"].shape[1:] != shape:
            raise CheckError(
                f"x_test examples have shape {list(headers['x_test'].shape[1:])} "
                f"but x examples have {list(shape)}"
            )
        labelled = "y" in headers
        if not labelled and ("y_test" in headers or "class_names" in members):
            raise CheckError("y_test or class_names given without y")
        if "y_test" in headers and "x_test" not in headers:
            raise CheckError("y_test given without x_test")
        if labelled and "x_test" in headers and "y_test" not in headers:
            raise CheckError("x_test given without y_test")
        _check_labels(headers)
        class_names = (
            _class_names(archive, members["class_names"]) if "class_names" in members else None
        )
        known = len(class_names) if class_names is not None else None

        arrays: dict[str, str] = {}
        high = -1

        def copy(name: str, dtype: Any, finite: bool = False, labels: bool = False) -> None:
            nonlocal high

            def check_labels(start: int, block: np.ndarray) -> None:
                nonlocal high
                if block.size == 0:
                    return
                low = int(block.min())
                if low < 0:
                    row = int(np.argmax(block < 0))
                    raise CheckError(f"{name} row {start + row} holds class {int(block[row])} < 0")
                top = block.max()
                bound = known if known is not None else MAX_CLASSES
                if top >= bound:
                    row = int(np.argmax(block >= bound))
                    limit = (
                        f"class_names has {known} names"
                        if known is not None
                        else f"at most {MAX_CLASSES} classes"
                    )
                    raise CheckError(
                        f"{name} row {start + row} holds class {int(block[row])}; {limit}"
                    )
                high = max(high, int(top))

            with archive.open(members[name]) as fp:
                header = npyio.read_header(fp, name)
                npyio.copy_array(
                    fp,
                    header,
                    ctx.output(f"{name}.npy", header.nbytes_as(dtype)),
                    dtype,
                    name,
                    finite=finite,
                    check=check_labels if labels else None,
                )
            arrays[name] = ctx.key(f"{name}.npy")

        copy("x", x_dtype, finite=True)
        if "x_test" in headers:
            copy("x_test", x_dtype, finite=True)
        if labelled:
            copy("y", np.int64, labels=True)
            if "y_test" in headers:
                copy("y_test", np.int64, labels=True)
        num_classes = None
        if labelled:
            num_classes = known if known is not None else high + 1
            if num_classes < 2:
                raise CheckError(f"y holds {num_classes} class; a classifier needs at least 2")
        rows = headers["x"].shape[0]
        test_rows = headers["x_test"].shape[0] if "x_test" in headers else 0
        if labelled and not test_rows and rows < 2:
            raise CheckError("x has 1 row; at least 2 are needed to split off a test set")
    return {
        "format": "npz",
        "rows": rows,
        "test_rows": test_rows,
        "input_shape": list(shape),
        "dtype": x_dtype.name,
        "labelled": labelled,
        "num_classes": num_classes,
        "class_names": class_names,
        "test_split": splits.describe(test_rows, labelled),
        "arrays": arrays,
    }


register(Format("npz", "dataset", (".npz",), check))
