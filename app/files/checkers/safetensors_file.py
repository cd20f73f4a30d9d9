"""Teacher weights in safetensors: an 8-byte header length, a JSON header, raw tensor data.

Checked by hand (no tensor is read): every tensor's dtype known, its shape a list of ints and its
byte range inside the file, consistent with dtype x shape, the ranges tiling the data exactly."""

import json
import math
import struct
from typing import Any

from app.files.formats import CheckContext, CheckError, Format, register

MAX_HEADER_BYTES = 100 * 1000 * 1000
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def check(ctx: CheckContext) -> dict[str, Any]:
    size = ctx.path.stat().st_size
    with ctx.path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckError("not a safetensors file: shorter than its 8-byte header length")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8:
            raise CheckError(
                f"not a safetensors file: the header claims {header_len} bytes but the file has "
                f"{size} (a pickle or another format renamed .safetensors?)"
            )
        if header_len > MAX_HEADER_BYTES:
            raise CheckError(
                f"the safetensors header claims {header_len} bytes, over the limit of "
                f"{MAX_HEADER_BYTES}"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckError(f"the safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise CheckError("the safetensors header is not a JSON object")
    data_bytes = size - 8 - header_len
    tensors: dict[str, dict[str, Any]] = {}
    ranges = []
    params = 0
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entry.items()
            ):
                raise CheckError("__metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise CheckError(f"tensor {name!r}: expected dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise CheckError(f"tensor {name!r} has an unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise CheckError(f"tensor {name!r}: shape must be a list of non-negative ints")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise CheckError(f"tensor {name!r}: data_offsets must be [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes:
            raise CheckError(
                f"tensor {name!r}: data_offsets {offsets} fall outside the file's "
                f"{data_bytes} data bytes"
            )
        count = math.prod(shape)
        if end - begin != count * DTYPE_BYTES[dtype]:
            raise CheckError(
                f"tensor {name!r}: shape {shape} of {dtype} needs {count * DTYPE_BYTES[dtype]} "
                f"bytes but data_offsets span {end - begin}"
            )
        tensors[name] = {"dtype": dtype, "shape": shape}
        ranges.append((begin, end, name))
        params += count
    if not tensors:
        raise CheckError("the safetensors file holds no tensors")
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            raise CheckError(
                f"tensor {name!r}: data_offsets start at {begin}, expected {position} "
                "(tensors overlap or leave gaps)"
            )
        position = end
    if position != data_bytes:
        raise CheckError(f"the tensors cover {position} of the file's {data_bytes} data bytes")
    return {
        "format": "safetensors",
        "tensors": tensors,
        "tensor_count": len(tensors),
        "params": params,
    }


register(Format("safetensors", "teacher", (".safetensors",), check))
