"""Precomputed teacher logits: a 2-D float .npy, or an .npz with `logits` and optionally
`logits_test`. One row per dataset row, one column per class, all finite."""

from typing import IO, Any

import numpy as np

from app.files import npyio
from app.files.checkers.npz import member_header, open_members
from app.files.formats import MAX_CLASSES, CheckContext, CheckError, Format, register


def _validate(header: npyio.NpyHeader, name: str) -> None:
    if header.dtype.kind != "f" or header.dtype.itemsize not in (2, 4, 8):
        raise CheckError(f"{name} must be float16, float32 or float64, not {header.dtype}")
    if len(header.shape) != 2:
        raise CheckError(f"{name} must be 2-D (rows, classes), got shape {list(header.shape)}")
    rows, columns = header.shape
    if rows < 1:
        raise CheckError(f"{name} has no rows")
    if not 2 <= columns <= MAX_CLASSES:
        raise CheckError(f"{name} has {columns} columns; logits need 2..{MAX_CLASSES} classes")


def _out_dtype(headers: list[npyio.NpyHeader]) -> np.dtype[Any]:
    if all(h.dtype.itemsize == 2 for h in headers):
        return np.dtype(np.float16)
    return np.dtype(np.float32)


def _copy(ctx: CheckContext, fp: IO[bytes], name: str, dtype: np.dtype[Any]) -> str:
    header = npyio.read_header(fp, name)
    out = ctx.output(f"{name}.npy", header.nbytes_as(dtype))
    npyio.copy_array(fp, header, out, dtype, name, finite=True)
    return ctx.key(f"{name}.npy")


def check_npy(ctx: CheckContext) -> dict[str, Any]:
    with ctx.path.open("rb") as f:
        header = npyio.read_header(f, "logits")
        _validate(header, "logits")
        size = ctx.path.stat().st_size
        if header.header_bytes + header.data_bytes != size:
            raise CheckError(
                f"logits: its header says shape {list(header.shape)} of {header.dtype} but the "
                f"file holds {size - header.header_bytes} bytes of data"
            )
        f.seek(0)
        dtype = _out_dtype([header])
        arrays = {"logits": _copy(ctx, f, "logits", dtype)}
    return _info("npy", header, None, dtype, arrays)


def check_npz(ctx: CheckContext) -> dict[str, Any]:
    archive, members = open_members(ctx, ("logits", "logits_test"))
    with archive:
        if "logits" not in members:
            raise CheckError("the .npz has no array 'logits'")
        headers = {name: member_header(archive, info, name) for name, info in members.items()}
        for name, header in headers.items():
            _validate(header, name)
        test = headers.get("logits_test")
        if test is not None and test.shape[1] != headers["logits"].shape[1]:
            raise CheckError(
                f"logits_test has {test.shape[1]} columns but logits has "
                f"{headers['logits'].shape[1]}"
            )
        dtype = _out_dtype(list(headers.values()))
        arrays = {}
        for name, info in members.items():
            with archive.open(info) as fp:
                arrays[name] = _copy(ctx, fp, name, dtype)
    return _info("npz", headers["logits"], test, dtype, arrays)


def _info(
    fmt: str,
    header: npyio.NpyHeader,
    test: npyio.NpyHeader | None,
    dtype: np.dtype[Any],
    arrays: dict[str, str],
) -> dict[str, Any]:
    return {
        "format": fmt,
        "rows": header.shape[0],
        "num_classes": header.shape[1],
        "test_rows": test.shape[0] if test is not None else 0,
        "dtype": dtype.name,
        "arrays": arrays,
    }


register(Format("npy", "logits", (".npy",), check_npy))
register(Format("npz", "logits", (".npz",), check_npz))
