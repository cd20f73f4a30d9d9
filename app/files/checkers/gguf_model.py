"""A teacher as a GGUF file (llama.cpp's format, what most small LLMs are shared in): a header of
metadata (architecture, shapes, the tokenizer's vocabulary and merges) and tensors, often
quantised. The worker loads it with transformers' GGUF support, dequantised to float32.

Checked here by hand, without the gguf package and without trusting a count: every length and
count the header states is bounded by what the file can hold before it is acted on (a lying
header is refused, nothing allocated for it); every tensor's type is known and its byte range,
aligned, inside the file's data; the architecture is one transformers reads as a causal LM and
the file carries a tokenizer. Nothing in the file is executed (GGUF holds no code)."""

import math
import struct
from typing import Any, BinaryIO

from app.files.formats import CheckContext, CheckError, Format, register

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_TENSORS = 100_000
MAX_DIMS = 4
MAX_STRING_BYTES = 64 * 1024**2
# Architectures transformers' GGUF loader turns into a *ForCausalLM (integrations/ggml.py).
ARCHITECTURES = (
    "llama",
    "mistral",
    "qwen2",
    "qwen2moe",
    "qwen3",
    "qwen3moe",
    "phi3",
    "gpt2",
    "bloom",
    "falcon",
    "stablelm",
    "starcoder2",
    "nemotron",
    "gemma2",
    "gemma3",
)
# ggml tensor types: (elements per block, bytes per block) (gguf's GGML_QUANT_SIZES).
TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
}
# Metadata value types: struct code of the scalars, 8 string, 9 array.
SCALARS = {
    **{0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?"},
    **{10: "Q", 11: "q", 12: "d"},
}
STRING, ARRAY = 8, 9


class Reader:
    """Little-endian reads from the file that never go past its end."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.size = size

    @property
    def left(self) -> int:
        return self.size - self.file.tell()

    def take(self, count: int, what: str) -> bytes:
        if count > self.left:
            raise CheckError(
                f"the GGUF header is cut short or lies: {what} needs {count} bytes at offset "
                f"{self.file.tell()}, the file has {self.left} left"
            )
        return self.file.read(count)

    def scalar(self, code: str, what: str) -> Any:
        return struct.unpack("<" + code, self.take(struct.calcsize(code), what))[0]

    def count(self, what: str, each: int, limit: int | None = None) -> int:
        """A u64 count of items of at least `each` bytes, which the file must be able to hold."""
        value = int(self.scalar("Q", what))
        if value * each > self.left or (limit is not None and value > limit):
            raise CheckError(
                f"the GGUF header lies: {what} is {value}, more than the file's remaining "
                f"{self.left} bytes can hold" + ("" if limit is None else f" (limit {limit})")
            )
        return value

    def string(self, what: str) -> str:
        length = self.count(f"the length of {what}", 1, MAX_STRING_BYTES)
        raw = self.take(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckError(f"the GGUF header: {what} is not UTF-8") from None

    def value(self, kind: int, key: str, keep: bool) -> Any:
        if kind in SCALARS:
            return self.scalar(SCALARS[kind], f"the value of {key!r}")
        if kind == STRING:
            return self.string(f"the value of {key!r}")
        if kind != ARRAY:
            raise CheckError(f"the GGUF header: {key!r} has unknown value type {kind}")
        element = int(self.scalar("I", f"the element type of {key!r}"))
        if element == ARRAY:
            raise CheckError(f"the GGUF header: {key!r} is an array of arrays")
        each = struct.calcsize(SCALARS[element]) if element in SCALARS else 8
        length = self.count(f"the length of {key!r}", each)
        if element in SCALARS and not keep:
            self.take(length * each, f"the values of {key!r}")
            return length
        items = [self.value(element, key, False) for _ in range(length)]
        return items if keep else length


def _metadata(reader: Reader, count: int) -> dict[str, Any]:
    """The header's key/values; arrays as their lengths (the tokens counted, not kept)."""
    found: dict[str, Any] = {}
    for _ in range(count):
        key = reader.string("a metadata key")
        kind = int(reader.scalar("I", f"the value type of {key!r}"))
        if key in found:
            raise CheckError(f"the GGUF header has {key!r} twice")
        found[key] = reader.value(kind, key, keep=False)
    return found


def _tensors(reader: Reader, count: int) -> list[tuple[str, list[int], int, int]]:
    """(name, shape, type, offset) of every tensor."""
    tensors = []
    names: set[str] = set()
    for index in range(count):
        name = reader.string(f"tensor {index}'s name")
        if name in names:
            raise CheckError(f"the GGUF file has tensor {name!r} twice")
        names.add(name)
        dims = int(reader.scalar("I", f"tensor {name!r}'s dimension count"))
        if not 1 <= dims <= MAX_DIMS:
            raise CheckError(f"tensor {name!r} has {dims} dimensions (1 to {MAX_DIMS})")
        shape = [int(reader.scalar("Q", f"tensor {name!r}'s shape")) for _ in range(dims)]
        kind = int(reader.scalar("I", f"tensor {name!r}'s type"))
        if kind not in TYPES:
            raise CheckError(f"tensor {name!r} has ggml type {kind}, which is not known here")
        offset = int(reader.scalar("Q", f"tensor {name!r}'s offset"))
        tensors.append((name, shape, kind, offset))
    return tensors


def _whole(metadata: dict[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check(ctx: CheckContext) -> dict[str, Any]:
    size = ctx.path.stat().st_size
    with ctx.path.open("rb") as file:
        reader = Reader(file, size)
        if size < 4 or reader.take(4, "the magic") != MAGIC:
            raise CheckError("not a GGUF file: it does not start with 'GGUF'")
        version = int(reader.scalar("I", "the version"))
        if version not in VERSIONS:
            raise CheckError(
                f"GGUF version {version}; versions {', '.join(map(str, VERSIONS))} are read "
                "(a big-endian file, or one too old or too new?)"
            )
        # A tensor's info takes at least 8 + 4 + 8 + 4 + 8 bytes; a key/value at least 8 + 4 + 1.
        tensor_count = reader.count("the tensor count", 32, MAX_TENSORS)
        kv_count = reader.count("the metadata count", 13)
        metadata = _metadata(reader, kv_count)
        tensors = _tensors(reader, tensor_count)
        header_end = file.tell()
    alignment = _whole(metadata, "general.alignment") or DEFAULT_ALIGNMENT
    if alignment < 1 or alignment & (alignment - 1):
        raise CheckError(f"general.alignment is {alignment}, not a power of two")
    data_start = -(-header_end // alignment) * alignment
    data_bytes = size - data_start
    params = 0
    types: dict[str, int] = {}
    for name, shape, kind, offset in tensors:
        type_name, block, block_bytes = TYPES[kind]
        elements = math.prod(shape)
        if shape[0] % block:
            raise CheckError(
                f"tensor {name!r}: its rows of {shape[0]} do not split into {type_name} blocks "
                f"of {block}"
            )
        nbytes = elements // block * block_bytes
        if offset % alignment or offset + nbytes > data_bytes:
            raise CheckError(
                f"tensor {name!r} lies: its {nbytes} bytes at offset {offset} are not aligned "
                f"to {alignment} or end past the file's {data_bytes} bytes of data"
            )
        params += elements
        types[type_name] = types.get(type_name, 0) + 1
    architecture = metadata.get("general.architecture")
    if architecture not in ARCHITECTURES:
        raise CheckError(
            f"the GGUF model's architecture is {architecture!r}; transformers reads these as "
            f"causal LMs: {', '.join(ARCHITECTURES)}"
        )
    vocab = metadata.get("tokenizer.ggml.tokens")
    if not isinstance(vocab, int) or vocab < 2 or "tokenizer.ggml.model" not in metadata:
        raise CheckError(
            "the GGUF file has no tokenizer (tokenizer.ggml.model and tokenizer.ggml.tokens): "
            "convert the model with its tokenizer"
        )
    return {
        "format": "gguf",
        "task": "language_model",
        "model_type": architecture,
        "name": title if isinstance(title := metadata.get("general.name"), str) else None,
        "version": version,
        "vocab_size": vocab,
        "layers": _whole(metadata, f"{architecture}.block_count"),
        "context_length": _whole(metadata, f"{architecture}.context_length"),
        "tensors": len(tensors),
        "tensor_types": dict(sorted(types.items())),
        "params": params,
    }


register(Format("gguf", "teacher", (".gguf",), check))
