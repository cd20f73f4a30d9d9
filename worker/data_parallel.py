"""Data parallelism inside the one training loop (worker/train.py), when it runs in a torchrun
rank (worker/torchrun.py): torch.distributed is initialised with more than one process.

Every rank walks the same seeded order; each takes an equal contiguous part of every batch
(`part`), and DDP averages the gradients, each rank's loss weighted by its part's share so
that the step is the one a single process takes on the whole batch. What the loop decides
from values (the epoch's loss, validation, whether to stop) is agreed on collectively, so
every rank takes the same steps and stops at the same one; rank 0 alone validates and writes
(checkpoints, metrics, events).
"""

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from worker.control import JobCancelled, JobPaused, LeaseLost

# What stops a loop, by precedence: a rank that lost the lease outranks a cancel, which
# outranks a pause.
STOPS: tuple[type[Exception], ...] = (JobPaused, JobCancelled, LeaseLost)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def writes() -> bool:
    """Whether this process writes what the loop reports (rank 0, or the only process)."""
    return rank() == 0


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The module each rank steps: gradients averaged across ranks as they are computed."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def part(
    index: torch.Tensor, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """This rank's share of a batch (its examples, their positions), the weight of its loss
    and how many examples it has: DDP averages the ranks' gradients, so each mean loss counts
    as its part's share of the batch times the ranks. A rank left with no example (a last
    batch smaller than the ranks) steps on one with weight 0: every rank must take part in
    every step."""
    world, me = dist.get_world_size(), dist.get_rank()
    mine = torch.tensor_split(torch.arange(len(index)), world)[me]
    if len(mine) == 0:
        return index[:1], positions[:1], 0.0, 0
    return index[mine], positions[mine], len(mine) * world / len(index), len(mine)


def all_sum(*values: float | torch.Tensor) -> list[float]:
    """Each value summed over the ranks."""
    total = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()


def from_writer(value: Any) -> Any:
    """Rank 0's `value`, on every rank."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agreed(check: Callable[[], None]) -> Callable[[], None]:
    """`check` (which raises to stop the loop) decided for every rank at once: each runs its
    own, and if any would stop, all stop, with the weightiest reason."""

    def check_together() -> None:
        mine: Exception | None = None
        try:
            check()
        except STOPS as exc:
            mine = exc
        code = torch.tensor([0 if mine is None else _code(mine)])
        dist.all_reduce(code, op=dist.ReduceOp.MAX)
        stop = int(code.item())
        if stop:
            if mine is not None and _code(mine) == stop:
                raise mine
            raise STOPS[stop - 1]("stopped with the other ranks")

    return check_together


def _code(exc: Exception) -> int:
    return next(i + 1 for i, kind in enumerate(STOPS) if isinstance(exc, kind))
