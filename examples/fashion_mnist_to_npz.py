"""Turn Fashion-MNIST's IDX files into an upload-ready Distillery dataset (.npz).

    apt-get install dataset-fashion-mnist        # Debian / Ubuntu: the files land in
                                                 # /usr/share/datasets/fashion-mnist
    python examples/fashion_mnist_to_npz.py --output fashion.npz --train-limit 20000

The .npz holds plain arrays only (it loads with np.load(allow_pickle=False)):

    x            uint8 (N, 1, 28, 28)   raw pixels 0..255 (Distillery normalises inside the model)
    y            int64 (N,)             labels 0..9
    x_test       uint8 (10000, 1, 28, 28)
    y_test       int64 (10000,)
    class_names  <U11 (10,)             a unicode array, not an object array

Needs only numpy. The IDX reader takes plain or gzipped files (detected by content).
"""

import argparse
import gzip
import struct
import sys
from pathlib import Path

import numpy as np

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data is big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
    """The file is not a well-formed IDX file."""


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file (plain or gzipped) into a native-endian array."""
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    if len(data) < 4:
        raise IdxError(f"{name}: too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES:
        raise IdxError(f"{name}: not an IDX file (magic {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: header announces {ndim} dimensions but the file ends early")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise IdxError(
            f"{name}: shape {shape} of {dtype} needs {expected} bytes of data, "
            f"found {len(data) - header}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(path.read_bytes(), str(path))


def find_idx(source_dir: Path, stem: str) -> Path:
    """`stem` or `stem.gz` in source_dir (Debian ships the .gz files)."""
    for candidate in (source_dir / stem, source_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {stem}[.gz] in {source_dir} (Debian: apt-get install dataset-fashion-mnist)"
    )


def load_split(source_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(find_idx(source_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(source_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IdxError(f"{prefix}: images {images.shape} and labels {labels.shape} do not match")
    return images[:, None, :, :].astype(np.uint8), labels.astype(np.int64)


def stratified_first(y: np.ndarray, limit: int) -> np.ndarray:
    """Indices of `limit` rows, classes as balanced as they can be, earliest rows first.

    Each row is ranked within its class (0 for the first of its class, 1 for the next...);
    rows are taken by rank, then by position, and returned in file order. Deterministic.
    """
    if limit >= len(y):
        return np.arange(len(y))
    rank = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        rank[where] = np.arange(len(where))
    order = np.lexsort((np.arange(len(y)), rank))
    return np.sort(order[:limit])


def build(
    source_dir: Path, train_limit: int | None = None, test_limit: int | None = None
) -> dict[str, np.ndarray]:
    return build_with_transfer(source_dir, train_limit, test_limit)[0]


def build_with_transfer(
    source_dir: Path, train_limit: int | None = None, test_limit: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The labelled dataset, and the training images left out by --train-limit as an
    unlabelled transfer set ({"x"}; empty when every training image is labelled)."""
    x, y = load_split(source_dir, "train")
    x_test, y_test = load_split(source_dir, "t10k")
    transfer = {"x": x[:0]}
    if train_limit is not None:
        keep = stratified_first(y, train_limit)
        left_out = np.ones(len(y), dtype=bool)
        left_out[keep] = False
        transfer = {"x": np.ascontiguousarray(x[left_out])}
        x, y = x[keep], y[keep]
    if test_limit is not None:
        keep = stratified_first(y_test, test_limit)
        x_test, y_test = x_test[keep], y_test[keep]
    dataset = {
        "x": np.ascontiguousarray(x),
        "y": y,
        "x_test": np.ascontiguousarray(x_test),
        "y_test": y_test,
        "class_names": np.array(CLASS_NAMES, dtype=np.str_),
    }
    return dataset, transfer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE, help="IDX files")
    parser.add_argument("--output", type=Path, default=Path("fashion-mnist.npz"))
    parser.add_argument(
        "--train-limit",
        type=int,
        default=None,
        help="keep this many training rows (class-balanced, earliest first); default all 60,000",
    )
    parser.add_argument("--test-limit", type=int, default=None, help="likewise for the test set")
    parser.add_argument(
        "--transfer-output",
        type=Path,
        default=None,
        help="also write the training images --train-limit left out, without labels (x only), "
        "as an .npz to upload as a transfer set",
    )
    args = parser.parse_args(argv)
    for name in ("train_limit", "test_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    arrays, transfer = build_with_transfer(args.source_dir, args.train_limit, args.test_limit)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # np.savez appends .npz to a name without it; write exactly the name asked for.
    with args.output.open("wb") as f:
        np.savez_compressed(f, **arrays)
    if args.transfer_output is not None:
        with args.transfer_output.open("wb") as f:
            np.savez_compressed(f, **transfer)
        print(f"wrote {args.transfer_output}: {len(transfer['x']):,} unlabelled", file=sys.stderr)
    counts = np.bincount(arrays["y"], minlength=len(CLASS_NAMES))
    print(
        f"wrote {args.output} ({args.output.stat().st_size:,} bytes): "
        f"x {arrays['x'].shape} {arrays['x'].dtype}, x_test {arrays['x_test'].shape}, "
        f"train rows per class {counts.min()}..{counts.max()}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
