"""The soft-label store: teacher logits computed once per (teacher, inputs, preprocessing)
and kept as one contiguous array file per entry, memory-mapped when read.

An entry is one of two kinds, told apart by its .npy header alone:

- full: an (examples, classes) float16 array, every logit of every example.
- top-k (a key made with `top_k`, for large output spaces): an (examples,) array of records
  holding each example's k largest logits (float32, largest first), their classes (the
  smallest unsigned integer that holds the class count) and the log-sum-exp of all its logits
  (float32). p_i = exp(z_i - lse) is then the teacher's probability of each stored class,
  and 1 - sum p_i the mass of all the others (which the KD losses read as one outcome,
  worker/kd/losses.py:top_k_buckets; a full row built from the record spreads it evenly).
  The values are float32 because float16 is not precise enough for that: an error of half a
  float16 step in z_i - lse is an error of the same size, relative, in p_i, and at |z| in
  [16, 32) that step is 2^-6, so p_i would be off by up to 0.8%, where float16 probabilities
  are good to 2^-11 (0.05%). From float32 values and lse, p_i is good to about 4e-6.
  A key made with `tail_samples` m too (`-top{k}-tail{m}`) adds m classes per example drawn
  from the teacher's distribution over the classes outside its top k (at T = 1, with
  replacement, by a hash of the row so the bytes do not depend on batching): forward KL
  reads them as an unbiased sample of how the leftover mass is shared (tail_samples, and
  worker/kd/losses.py). m more ids per example: 2m bytes under 65,536 classes.
  A structured .npy (rather than an .npz of three arrays, which cannot be memory-mapped) keeps
  one file per entry, so the capped folder's accounting, pinning and eviction apply as they
  are. The class count, which reconstruction needs, is the `index` field's title.

Entries live in a capped folder (app/capped_folder.py): writing one evicts the least recently
used entries until it fits DISTILLERY_SOFT_LABEL_STORE_BYTES, and an entry a job has mapped is
pinned (never evicted) until the job lets go of it, even by dying.
"""

import hashlib
import io
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch

from app.capped_folder import CappedFolder
from app.settings import Settings
from worker.precision import pinned

if TYPE_CHECKING:
    from worker.batch import Batch

_TOP_K_KEY = re.compile(r"-top(\d+)(?:-tail(\d+))?$")
_CLASSES_TITLE = re.compile(r"classes=(\d+)$")

# Leftover mass below this (only ever from rounding: the k stored probabilities sum to 1 or a
# hair over) is taken as this, so the other classes' logits stay finite and so do the losses
# (a -inf logit makes KL divergence NaN).
_LEFTOVER_FLOOR = float(np.finfo(np.float32).tiny)


class TopKLogits:
    """A top-k entry's records, with the (examples, classes) shape the logits they stand for
    would have. Holding it holds the memory map, and with it the entry's pin."""

    def __init__(self, records: np.ndarray) -> None:
        # A field's title is also a key of `fields`, next to the field's name.
        titles = [m for m in map(_CLASSES_TITLE.match, records.dtype.fields or {}) if m]
        if len(titles) != 1:
            raise ValueError(f"a top-k soft-label entry without its class count: {records.dtype}")
        self.records = records
        self.classes = int(titles[0].group(1))
        self.k = int(records.dtype["value"].shape[0])
        names = records.dtype.names or ()
        self.tail_samples = int(records.dtype["tail"].shape[0]) if "tail" in names else 0

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.records), self.classes)

    @property
    def dtype(self) -> np.dtype:
        return self.records.dtype["value"].base

    def rows(self, rows: np.ndarray, device: torch.device) -> "TopKRows":
        """The records of `rows`, on `device`, with the logit each other class gets."""
        records = self.records[rows]
        values = np.ascontiguousarray(records["value"])
        lse = records["lse"].astype(np.float64)
        kept = np.exp(values.astype(np.float64) - lse[:, None]).sum(axis=1)
        leftover = np.maximum(1.0 - kept, _LEFTOVER_FLOOR)
        rest = (lse + np.log(leftover / (self.classes - self.k))).astype(np.float32)
        tail = None
        if self.tail_samples:
            tail = torch.from_numpy(records["tail"].astype(np.int64)).to(device, non_blocking=True)
        return TopKRows(
            values=torch.from_numpy(values).to(device, non_blocking=True),
            index=torch.from_numpy(records["index"].astype(np.int64)).to(device, non_blocking=True),
            rest=torch.from_numpy(rest).to(device, non_blocking=True),
            classes=self.classes,
            tail=tail,
        )

    def logits(self, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        """Full (len(rows), classes) float32 logits on `device` whose softmax is the teacher's
        probability at each stored class, the leftover mass spread evenly over the others."""
        return self.rows(rows, device).dense()


@dataclass(frozen=True)
class TopKRows:
    """Teacher logits of a batch as a top-k entry keeps them: per row the k largest logits
    (`values`), their classes (`index`) and the logit every other class would get were the
    leftover probability spread evenly (`rest`: (classes - k) exp(rest - lse) is the leftover
    mass). `dense()` is that full (rows, classes) tensor, for methods that need one; the
    divergence methods read the k values and the leftover directly (worker/kd/losses.py),
    never building it. `tail`, when the entry keeps one, is each row's classes drawn from
    the teacher's distribution over the classes it did not store (at T = 1), which `kd`
    reads as an unbiased sample of how the leftover mass is shared."""

    values: torch.Tensor  # (rows, k) float32
    index: torch.Tensor  # (rows, k) int64
    rest: torch.Tensor  # (rows,) float32
    classes: int
    tail: torch.Tensor | None = None  # (rows, m) int64

    def __len__(self) -> int:
        return len(self.values)

    def dense(self) -> torch.Tensor:
        full = self.rest[:, None].expand(len(self.rest), self.classes).contiguous()
        return full.scatter_(1, self.index, self.values)


TeacherLogits = torch.Tensor | TopKRows


def dense(logits: TeacherLogits) -> torch.Tensor:
    """Teacher logits as a (rows, classes) tensor, whatever the store kept."""
    return logits.dense() if isinstance(logits, TopKRows) else logits


Entry = np.ndarray | TopKLogits


class SoftLabelStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.folder = CappedFolder(root, max_bytes)

    @classmethod
    def for_settings(cls, settings: Settings) -> "SoftLabelStore":
        return cls(settings.soft_label_root, settings.soft_label_store_bytes)

    @staticmethod
    def key(
        teacher_sha256: str,
        data_fingerprint: str,
        preprocessing: str,
        top_k: int | None = None,
        tail_samples: int | None = None,
    ) -> str:
        """The entry's key; with `top_k`, a top-k entry's, and with `tail_samples` too, one
        that also keeps that many classes drawn from each row's tail (the key says k and m,
        which is how get_or_write knows them: one value, nothing to keep in step)."""
        parts = f"{teacher_sha256}:{data_fingerprint}:{preprocessing}"
        digest = hashlib.sha256(parts.encode()).hexdigest()
        if top_k is None:
            return digest
        return f"{digest}-top{top_k}" + (f"-tail{tail_samples}" if tail_samples else "")

    @staticmethod
    def top_k_of(key: str) -> tuple[int | None, int]:
        """The k and the number of tail samples a key asks for (None, 0: full logits)."""
        found = _TOP_K_KEY.search(key)
        if found is None:
            return None, 0
        return int(found.group(1)), int(found.group(2) or 0)

    def path(self, key: str) -> Path:
        return self.folder.path(_name(key))

    def get(self, key: str) -> Entry | None:
        """The stored entry (memory-mapped, pinned while held), or None."""
        stored = self.folder.open(_name(key))
        return None if stored is None else _entry(stored)

    def get_or_compute(self, key: str, compute: Callable[[], torch.Tensor]) -> tuple[Entry, bool]:
        """The stored logits (memory-mapped) and whether they were already there."""

        def one_chunk() -> Iterator[np.ndarray]:
            yield compute().float().numpy()

        return self.get_or_write(key, None, one_chunk)

    def get_or_write(
        self,
        key: str,
        shape: tuple[int, int] | None,
        chunks: Callable[[], Iterable["np.ndarray | torch.Tensor"]],
    ) -> tuple[Entry, bool]:
        """Like get_or_compute, with the logits given batch by batch (rows in order) and
        written as they come (a top-k key keeps each batch's top k): `shape` (rows, classes)
        is the whole array's; None means one chunk holds it all. The entry a full key gets is
        the memory-mapped float16 array; a top-k key gets TopKLogits (or, when k is at least
        the class count, the full array). Either pins its entry until garbage-collected."""
        stored = self.folder.open(_name(key))
        if stored is not None:
            return _entry(stored), True
        if shape is None:
            (only,) = list(chunks())
            if only.ndim != 2:
                raise ValueError(f"teacher logits of shape {tuple(only.shape)}; expected 2-D")
            shape = (only.shape[0], only.shape[1])
            chunks = lambda: [only]  # noqa: E731
        rows, classes = shape
        top_k, tail_samples = self.top_k_of(key)
        dtype = _entry_dtype(classes, top_k, tail_samples)
        header = _header(dtype, (rows, classes) if dtype.names is None else (rows,))

        def write(f: BinaryIO) -> None:
            f.write(header)
            written = _write_rows(f, chunks(), classes, dtype, 0)
            if written != rows:
                raise ValueError(f"the teacher gave {written} rows of logits for {rows} examples")

        size = len(header) + rows * bytes_per_example(classes, top_k, tail_samples)
        return _entry(self.folder.add(_name(key), size, write)), False

    def write_part(
        self,
        path: Path,
        key: str,
        classes: int,
        first_row: int,
        chunks: Iterable["np.ndarray | torch.Tensor"],
    ) -> int:
        """Rows `first_row` on of the entry `key`, given batch by batch as get_or_write takes
        them, written to `path` as the entry keeps them (its bytes, no header), whole or not
        at all: a shard of the entry (join_parts puts them together). Returns the rows."""
        top_k, tail_samples = self.top_k_of(key)
        dtype = _entry_dtype(classes, top_k, tail_samples)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as f:
                rows = _write_rows(f, chunks, classes, dtype, first_row)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return rows

    def join_parts(self, key: str, shape: tuple[int, int], parts: list[Path]) -> tuple[Entry, bool]:
        """The entry `key` of `shape` (rows, classes) made of the parts write_part wrote, in
        order (or the entry already there, and True)."""
        stored = self.folder.open(_name(key))
        if stored is not None:
            return _entry(stored), True
        rows, classes = shape
        top_k, tail_samples = self.top_k_of(key)
        dtype = _entry_dtype(classes, top_k, tail_samples)
        header = _header(dtype, (rows, classes) if dtype.names is None else (rows,))
        body = rows * bytes_per_example(classes, top_k, tail_samples)
        found = sum(part.stat().st_size for part in parts)
        if found != body:
            raise ValueError(f"soft-label shards of {found} bytes for an entry of {body}")

        def write(f: BinaryIO) -> None:
            f.write(header)
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, f, 1 << 20)

        return _entry(self.folder.add(_name(key), len(header) + body, write)), False


def entry_of(logits: torch.Tensor, top_k: int | None = None, tail_samples: int = 0) -> Entry:
    """The entry the store would hold for these (rows, classes) logits, kept in memory (a
    dry run times distillation steps on it)."""
    classes = logits.shape[1]
    array = _converted(logits, classes, _entry_dtype(classes, top_k, tail_samples), 0)
    return array if array.dtype.names is None else TopKLogits(array)


def _entry_dtype(classes: int, top_k: int | None, tail_samples: int = 0) -> np.dtype:
    """float16 logits, or top-k records when k is below the class count."""
    if top_k is None or top_k >= classes:
        return np.dtype(np.float16)
    return _records(classes, top_k, tail_samples)


def bytes_per_example(classes: int, top_k: int | None = None, tail_samples: int = 0) -> int:
    """What one example's soft labels take in an entry (headers aside)."""
    dtype = _entry_dtype(classes, top_k, tail_samples)
    return dtype.itemsize if dtype.names else classes * dtype.itemsize  # a record, or a row


def _records(classes: int, k: int, tail_samples: int = 0) -> np.dtype:
    """One example's top-k record (and its tail samples); packed (no alignment padding), as
    memory maps allow."""
    index = np.dtype(f"<u{np.min_scalar_type(classes - 1).itemsize}")
    names, formats = ["lse", "value", "index"], ["<f4", ("<f4", (k,)), (index, (k,))]
    titles = [None, None, f"classes={classes}"]
    if tail_samples:
        names.append("tail")
        formats.append((index, (tail_samples,)))
        titles.append(None)
    return np.dtype({"names": names, "formats": formats, "titles": titles})


def _name(key: str) -> str:
    return f"{key}.npy"


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    header = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(dtype)
    np.lib.format.write_array_header_2_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return header.getvalue()


def _entry(f: BinaryIO) -> Entry:
    array = _mapped(f)
    return array if array.dtype.names is None else TopKLogits(array)


def _mapped(f: BinaryIO) -> np.ndarray:
    """A read-only memory map of the .npy file `f`, which it then closes: the map keeps its
    own duplicate of the descriptor, and with it the entry's pin."""
    with f:
        f.seek(0)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        return np.memmap(
            f,
            dtype=dtype,
            mode="r",
            shape=shape,
            offset=f.tell(),
            order="F" if fortran_order else "C",
        )


def _write_rows(
    f: BinaryIO,
    chunks: Iterable["np.ndarray | torch.Tensor"],
    classes: int,
    dtype: np.dtype,
    first_row: int,
) -> int:
    """Write teacher logits, rows `first_row` on of an entry, as the entry keeps them; returns
    the rows written."""
    written = 0
    for chunk in chunks:
        array = _converted(chunk, classes, dtype, first_row + written)
        f.write(array.tobytes())
        written += len(array)
    return written


def _converted(
    chunk: "np.ndarray | torch.Tensor", classes: int, dtype: np.dtype, first_row: int
) -> np.ndarray:
    """A chunk of teacher logits, rows `first_row` on of the entry, as the entry's rows:
    float16, or top-k records (with their tail samples)."""
    if chunk.ndim != 2 or chunk.shape[1] != classes:
        raise ValueError(f"teacher logits of shape {tuple(chunk.shape)}; expected (n, {classes})")
    if dtype.names is None:
        if isinstance(chunk, torch.Tensor):
            chunk = chunk.detach().cpu().float().numpy()
        return np.ascontiguousarray(chunk, dtype=np.float16)
    # On the chunk's own device: only the (n, k) result crosses to the CPU.
    if isinstance(chunk, torch.Tensor):
        logits = chunk.detach().float()
    else:
        logits = torch.from_numpy(np.require(chunk, np.float32, ["C", "W"]))
    values, index = torch.topk(logits, dtype["value"].shape[0], dim=1)
    records = np.empty(len(logits), dtype)
    records["lse"] = torch.logsumexp(logits, dim=1).cpu().numpy()
    records["value"] = values.cpu().numpy()
    records["index"] = index.cpu().numpy()
    if "tail" in (dtype.names or ()):
        rows = np.arange(first_row, first_row + len(logits), dtype=np.uint64)
        records["tail"] = tail_samples(logits, index, rows, dtype["tail"].shape[0])
    return records


# Rows of a chunk drawn from at once: their cumulative tail probabilities are rows x classes
# float32 (256 x 49,152: 50 MB).
_SAMPLING_ROWS = 256


def tail_samples(
    logits: torch.Tensor, stored: torch.Tensor, rows: np.ndarray, m: int
) -> np.ndarray:
    """`m` classes per row drawn (with replacement) from the teacher's distribution at T = 1
    over the classes not in `stored`, by inverse CDF. The uniforms are a hash of (row of the
    entry, draw), not a generator's stream: the same entry gets the same samples however
    the labelling was batched, on any machine."""
    out = np.empty((len(logits), m), np.int64)
    for start in range(0, len(logits), _SAMPLING_ROWS):
        part = slice(start, start + _SAMPLING_ROWS)
        chunk = logits[part]
        # Unnormalised: the uniforms are scaled by each row's total instead.
        p = (chunk - chunk.amax(dim=1, keepdim=True)).exp_().scatter_(1, stored[part], 0.0)
        cdf = p.cumsum_(dim=1)
        u = torch.from_numpy(_uniforms(rows[part], m)).to(chunk.device, torch.float32)
        drawn = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
        out[part] = drawn.clamp_max(chunk.shape[1] - 1).cpu().numpy()
    return out


def _uniforms(rows: np.ndarray, m: int) -> np.ndarray:
    """(len(rows), m) numbers in [0, 1): splitmix64 of row x m + draw."""
    x = rows[:, None] * np.uint64(m) + np.arange(m, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(40)).astype(np.float64) / float(1 << 24)


class StoredLogits:
    """Reads the teacher logits of a batch of example indices from the store: (batch, classes)
    float32 on the device, from a full entry or reconstructed from a top-k one."""

    def __init__(
        self,
        array: Entry,
        device: torch.device,
        views_per_epoch: int | None = None,
        positions: int = 1,
    ) -> None:
        """`views_per_epoch`: the entry holds the logits of augmented views, epoch after epoch,
        each epoch's rows in the order the student meets them (its positions); None: one row
        per example. `positions`: rows per example or view (a sequence's tokens), in order."""
        self.array = array
        self.device = device
        self.views_per_epoch = views_per_epoch
        self.positions = positions

    @property
    def nbytes(self) -> int:
        array = self.array
        return int(array.records.nbytes if isinstance(array, TopKLogits) else array.nbytes)

    def for_batch(self, batch: "Batch") -> TeacherLogits:
        """The logits of a training batch: of its examples, or of its augmented views; with
        several positions each, (batch x positions, classes), an example's rows together."""
        if self.views_per_epoch is None:
            items = batch.index
        else:
            items = batch.epoch * self.views_per_epoch + batch.positions
        if self.positions > 1:
            items = (items[:, None] * self.positions + torch.arange(self.positions)).flatten()
        return self.rows(items)

    def rows(self, index: torch.Tensor) -> TeacherLogits:
        """The logits of rows `index` of the entry, as it keeps them (full, or top-k)."""
        rows = index.cpu().numpy()
        if isinstance(self.array, TopKLogits):
            return self.array.rows(rows, self.device)
        return pinned(torch.from_numpy(self.array[rows]), self.device).float()

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        """The logits of rows `index` of the entry, as a (rows, classes) tensor."""
        return dense(self.rows(index))
