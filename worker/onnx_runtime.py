"""Graphs measured in onnxruntime, the same way for every model a job produced (the quantize
stage's float and int8 graphs, the frontier's teacher / baseline / student / pruned / int8):
on the CPU execution provider, each graph fed its own input type, logits a chunk at a time,
latency at batch 1 on one thread, throughput at batch 32 on one thread. A model that tokenizes
its text first (worker/hf_classifier.py) hands its `Feed`: raw rows in, the graph's inputs out
(tokenizing is not timed: the feed is built before the runs)."""

import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worker.data.prepare import Examples
from worker.export import Tokenizes

# What a graph's declared input type reads as (the student's: float32 values, uint8 bytes;
# an uploaded teacher's may take int64 bytes).
INPUT_DTYPES = {
    "tensor(float)": torch.float32,
    "tensor(uint8)": torch.uint8,
    "tensor(int64)": torch.int64,
}
THROUGHPUT_BATCH = 32

# Raw examples -> the graph's inputs by name.
Feed = Callable[[torch.Tensor], dict[str, np.ndarray]]


def session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def input_dtype(graph: Any) -> torch.dtype:
    return INPUT_DTYPES[graph.get_inputs()[0].type]


def raw_feed(graph: Any) -> Feed:
    """The examples as they are, in the graph's one input's type."""
    name, dtype = graph.get_inputs()[0].name, input_dtype(graph)
    return lambda chunk: {name: chunk.to(dtype).numpy()}


def logits(path: Path, x: Examples, batch: int, feed: Feed | None = None) -> Iterator[torch.Tensor]:
    """The graph's first output for `x`, `batch` examples a run (a language model's windows
    hold a vocabulary-wide row per token: the task's eval batch). A tokenizing model's texts
    (`feed` given) run one at a time, unpadded: a dynamically quantised graph takes its
    activation ranges per run, so batched, a text's logits would depend on its batch-mates
    and their padding; alone, each text gets the answer it gets at batch 1."""
    graph = session(path)
    if feed is not None:
        batch = 1
    feed = feed or raw_feed(graph)
    for chunk in x.chunks(batch):
        yield torch.from_numpy(graph.run(None, feed(chunk))[0])


def timings_ms(
    path: Path,
    example: torch.Tensor,
    runs: int = 50,
    budget_seconds: float = 3.0,
    feed: Feed | None = None,
) -> list[float]:
    """Each run's time on one CPU thread, in milliseconds, after warm-up: `runs` runs, or as
    many as `budget_seconds` allows (at least 3: a language model's window takes a second)."""
    graph = session(path, threads=1)
    inputs = (feed or raw_feed(graph))(example)
    started = time.perf_counter()
    graph.run(None, inputs)
    if time.perf_counter() - started < 0.05:  # a fast graph: a few more warm-up runs
        for _ in range(4):
            graph.run(None, inputs)
    times: list[float] = []
    deadline = time.perf_counter() + budget_seconds
    while len(times) < runs and (len(times) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        graph.run(None, inputs)
        times.append((time.perf_counter() - started) * 1000)
    return times


def latency_ms(
    path: Path, example: torch.Tensor, runs: int = 50, feed: Feed | None = None
) -> float:
    """Median batch-1 latency on one CPU thread."""
    return statistics.median(timings_ms(path, example[:1], runs, feed=feed))


def speed(path: Path, example: torch.Tensor, feed: Feed | None = None) -> dict[str, float]:
    """Batch-1 p50 / p95 latency and batch-32 throughput (examples a second, from the median
    run), one thread, each up to 100 runs or about 3 s. `example` holds at least one example;
    the batch of 32 repeats it."""
    single = timings_ms(path, example[:1], runs=100, feed=feed)
    batch = example[:1].expand(THROUGHPUT_BATCH, *example.shape[1:]).contiguous()
    batched = statistics.median(timings_ms(path, batch, runs=100, feed=feed))
    p50, p95 = np.percentile(single, [50, 95])
    return {
        "latency_ms_p50": round(float(p50), 4),
        "latency_ms_p95": round(float(p95), 4),
        "latency_runs": len(single),
        "throughput_per_s_batch32": round(THROUGHPUT_BATCH * 1000 / batched, 1),
    }


def runtime() -> dict[str, Any]:
    """Where the timings were taken: the runtime, its provider and threads, and the CPU."""
    import onnxruntime

    return {
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "provider": "CPUExecutionProvider",
        "threads": 1,
        "cpu": cpu_name(),
    }


def feed_for(model: Any) -> Feed | None:
    """The feed of a model that tokenizes its inputs first (None: the raw examples)."""
    return model.onnx_feed if isinstance(model, Tokenizes) else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
