"""`compress`: the distilled student comes back pruned (fewer parameters, fewer channels in its
graph, recovered by KD from the stored labels) and as an int8 ONNX graph, measured in
onnxruntime on the test split, static (calibrated on training examples, never test ones) for
a convolutional student and dynamic for a linear one; each downloaded file gives the report's
accuracy on the dataset's raw inputs."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.models import JobStatus
from app.settings import Settings
from app.store.base import artifact_key
from app.store.local import LocalStore
from tests.worker.test_pipeline import TINY, load, submit
from worker import lifecycle
from worker.data.prepare import prepare
from worker.stages import quantize

CONV: dict[str, Any] = {
    "dataset": {"name": "mnist1d", "options": {"num_samples": 400}},
    "teacher": {"arch": "cnn1d", "params": {"channels": 8}, "train": {"epochs": 2}},
    "student": {"arch": "cnn1d", "params": {"channels": 8}},
    "distill": {"epochs": 2, "batch_size": 32},
    "baseline": False,
    "export": ["onnx"],
}


def downloaded(settings: Settings, job_id: str, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    store = LocalStore(settings.artifact_url)
    path.write_bytes(b"".join(store.open_chunks(artifact_key(job_id, name))))
    return path


def downloaded_accuracy(
    settings: Settings, job_id: str, tmp_path: Path, name: str = "student.int8.onnx"
) -> float:
    """An ONNX file as a user downloads it, on the raw test inputs the job used."""
    import onnxruntime

    path = downloaded(settings, job_id, name, tmp_path)
    job = load(settings, job_id)[0]
    data = prepare(job.spec["dataset"], job.spec["seed"], settings, job.tenant)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (logits,) = session.run(None, {name: data.test.head(len(data.test)).numpy()})
    return float((logits.argmax(1) == data.y_test.numpy()).mean())


@pytest.mark.parametrize(
    ("spec", "mode"),
    [(CONV, "static"), ({**TINY, "export": ["safetensors"]}, "dynamic")],
    ids=["conv-static", "linear-dynamic"],
)
def test_a_quantized_student_comes_back_as_int8_onnx_with_the_reports_accuracy(
    sqlite_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: dict[str, Any],
    mode: str,
) -> None:
    calibrated: list[np.ndarray] = []
    original = quantize._quantize_static

    def recording(source: Path, target: Path, input_name: str, inputs: np.ndarray) -> None:
        calibrated.append(inputs)
        original(source, target, input_name, inputs)

    monkeypatch.setattr(quantize, "_quantize_static", recording)
    job_id = submit(sqlite_settings, {**spec, "compress": {"quantize": {"kind": "int8"}}})
    lifecycle.run(job_id, sqlite_settings)
    job, events, _, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    int8 = job.result["int8"]
    assert int8["mode"] == mode
    assert "student.int8.onnx" in {a.name for a in artifacts}
    assert any(e.message.startswith(f"quantize: int8 ({mode})") for e in events)
    # The weights are stored as int8 (for models this small the graph's quantise / dequantise
    # nodes outweigh what that saves: the file need not be smaller).
    weights = int8_elements(downloaded(sqlite_settings, job_id, "student.int8.onnx", tmp_path))
    assert weights >= 0.5 * job.result["student"]["params"]
    assert abs(int8["test_accuracy"] - int8["float_onnx"]["test_accuracy"]) < 0.05
    accuracy = downloaded_accuracy(sqlite_settings, job_id, tmp_path)
    assert accuracy == pytest.approx(int8["test_accuracy"], abs=1e-3)
    if mode == "static":
        # Calibrated on the first training examples, none of them a test example.
        data = prepare(job.spec["dataset"], job.spec["seed"], sqlite_settings, job.tenant)
        (inputs,) = calibrated
        assert int8["calibration"] == {"split": "train", "examples": len(inputs)}
        assert np.array_equal(inputs, data.train.head(len(inputs)).numpy())
        test = {row.tobytes() for row in data.test.head(len(data.test)).numpy()}
        assert not any(row.tobytes() in test for row in inputs)
    else:
        assert not calibrated and int8["calibration"] is None


def test_a_causal_lm_student_comes_back_in_int8_with_the_reports_loss(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    """A from_teacher student of a Hugging Face causal LM: dynamic int8 (no convolutions),
    and the downloaded graph scores the held-out loss the report's int8 row states."""
    import onnxruntime
    import torch

    from tests.worker.teachers.tiny_causal_lm import save_tiny_causal_lm
    from tests.worker.teachers.tiny_hf import add_hf_teacher, zip_folder
    from tests.worker.test_pipeline_causal_lm import CONTEXT, MAX_BYTES, lm_spec
    from worker.causal_lm.loading import load_folder
    from worker.causal_lm.vocabulary import HfVocabulary
    from worker.data.text import stdlib_documents, windows

    folder = save_tiny_causal_lm(tmp_path / "teacher", "llama")
    file_id = add_hf_teacher(sqlite_settings, tmp_path, zip_folder(folder))
    spec = lm_spec(file_id, {"source": "from_teacher", "layers": [0, 3]})
    job_id = submit(sqlite_settings, {**spec, "compress": {"quantize": {"kind": "int8"}}})
    lifecycle.run(job_id, sqlite_settings)
    job, _, _, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    int8 = job.result["int8"]
    assert int8["mode"] == "dynamic" and "student.int8.onnx" in {a.name for a in artifacts}
    assert int8["bytes"] < int8["float_onnx"]["bytes"]
    assert int8["test_loss"] == pytest.approx(int8["float_onnx"]["test_loss"], abs=0.1)

    store = LocalStore(sqlite_settings.artifact_url)
    path = tmp_path / "student.int8.onnx"
    path.write_bytes(b"".join(store.open_chunks(artifact_key(job_id, "student.int8.onnx"))))
    # The test windows as a user cuts them: the published split rule, the teacher's tokenizer.
    lm = load_folder(folder)
    vocabulary = HfVocabulary(lm.tokenizer, lm.model.config.vocab_size, folder.name)
    _, _, x_test, y_test = windows(vocabulary.encode(stdlib_documents(MAX_BYTES)), CONTEXT)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"tokens": x_test.astype("int64")})
    loss = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits).flatten(0, 1), torch.from_numpy(y_test).long().flatten()
    )
    assert float(loss) == pytest.approx(int8["test_loss"], abs=1e-3)


def int8_elements(path: Path) -> int:
    """How many values an ONNX graph stores as int8."""
    import onnx

    graph = onnx.load(str(path)).graph
    return sum(
        int(np.prod(w.dims)) for w in graph.initializer if w.data_type == onnx.TensorProto.INT8
    )


def conv_widths(path: Path) -> list[int]:
    """The output channels of each convolution in an ONNX graph (its weights' first axis)."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {w.name: list(w.dims) for w in graph.initializer}
    return [weights[node.input[1]][0] for node in graph.node if node.op_type == "Conv"]


def test_a_pruned_then_quantized_student_has_fewer_channels_and_the_reports_accuracy(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    compress = {"prune": {"params_ratio": 0.5, "recovery_epochs": 2}, "quantize": {"kind": "int8"}}
    job_id = submit(sqlite_settings, {**CONV, "compress": compress})
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    report = job.result
    student, pruned, int8 = report["student"], report["pruned"], report["int8"]
    assert pruned["params"] <= 0.5 * student["params"]
    assert report["compression"]["pruned_param_ratio"] >= 2
    assert pruned["pruning"]["importance"] == "l2"
    assert pruned["pruning"]["recovery"]["labels"] == "stored"
    assert pruned["pruning"]["channels"]  # which layers lost channels, from -> to
    # What each step lost in the test metric; no tolerance was stated, so no verdict.
    lost = student["test_accuracy"] - pruned["test_accuracy"]
    assert pruned["loss"] == {"metric": "accuracy", "lost": round(lost, 4), "tolerance": None}
    lost = int8["float_onnx"]["test_accuracy"] - int8["test_accuracy"]
    assert int8["loss"]["lost"] == pytest.approx(lost, abs=1e-4)
    assert any(e.message.startswith("prune: ") for e in events)
    # Recovery's curves, one row per epoch, like every training stage.
    assert [m.epoch for m in metrics if m.stage == "prune"] == [1, 2]
    # The int8 graph is the pruned student's.
    assert int8["of"] == "pruned" and int8["params"] == pruned["params"]
    assert {"student.onnx", "student.pruned.onnx", "student.int8.onnx"} <= {
        a.name for a in artifacts
    }
    for name, row in (("student.pruned.onnx", pruned), ("student.int8.onnx", int8)):
        accuracy = downloaded_accuracy(sqlite_settings, job_id, tmp_path, name)
        assert accuracy == pytest.approx(row["test_accuracy"], abs=1e-3)
    # Fewer channels in the graph itself, every convolution narrower or the same.
    full = conv_widths(downloaded(sqlite_settings, job_id, "student.onnx", tmp_path))
    smaller = conv_widths(downloaded(sqlite_settings, job_id, "student.pruned.onnx", tmp_path))
    assert len(full) == len(smaller) and sum(smaller) < sum(full)
    assert all(s <= f for s, f in zip(smaller, full, strict=True))

    # The frontier: every model the job produced, timed and scored in one runtime.
    frontier = report["frontier"]
    assert frontier["runtime"].startswith("onnxruntime") and frontier["threads"] == 1
    assert frontier["cpu"] and frontier["metric"] == "accuracy"
    rows = {row["model"]: row for row in frontier["rows"]}
    assert list(rows) == ["teacher", "student", "pruned", "int8"]
    for name, row in rows.items():
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"]
        assert row["throughput_per_s_batch32"] > 0
        assert row["params"] == report[name]["params"]
        assert row["test_accuracy"] == pytest.approx(report[name]["test_accuracy"], abs=1e-3)
        teacher_share = 100 * row["test_accuracy"] / report["teacher"]["test_accuracy"]
        assert row["accuracy_pct_of_teacher"] == pytest.approx(teacher_share, abs=0.01)
        assert 0 <= row["top1_agreement"] <= 1
    assert rows["teacher"]["top1_agreement"] == 1.0
    assert rows["int8"]["bytes"] == int8["bytes"]
    assert rows["pruned"]["bytes"] < rows["student"]["bytes"]
    svg = downloaded(sqlite_settings, job_id, "frontier.svg", tmp_path).read_text()
    assert svg.startswith("<svg") and svg.count("<circle") == 2 * len(rows)
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_a_latency_target_with_taylor_importance_prunes_until_the_measured_latency_holds(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The latency target is measured after each step; here the clock is a stand-in that
    reads the parameter count (timings are the benchmarks' business, not a test's)."""
    from worker import export
    from worker.models import count_params

    def latency_ms(model: Any, example: Any, runs: int = 50) -> float:
        return count_params(model) / 100

    monkeypatch.setattr(export, "cpu_latency_ms", latency_ms)
    prune = {"latency_ratio": 0.6, "importance": "taylor", "recovery_epochs": 1}
    job_id = submit(sqlite_settings, {**CONV, "compress": {"prune": prune}})
    lifecycle.run(job_id, sqlite_settings)
    job, _, _, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    student, pruned = job.result["student"], job.result["pruned"]
    assert pruned["pruning"]["target"] == {"latency_ratio": 0.6}
    assert pruned["pruning"]["importance"] == "taylor"
    assert pruned["latency_ms_cpu"] <= 0.6 * student["latency_ms_cpu"]
    assert pruned["params"] <= 0.6 * student["params"]
    assert "student.pruned.onnx" in {a.name for a in artifacts}
    assert "int8" not in job.result


def test_a_requeued_job_rebuilds_the_pruned_student_it_recovered(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker is lost after pruning and recovery: the next attempt replays the recorded
    pruning steps (a latency measured again could stop elsewhere: here it would stop at
    once) and loads the recovered weights instead of training them again."""
    from safetensors.torch import load_file
    from sqlalchemy import update

    from app.db import session_scope
    from app.models import Job
    from worker import export
    from worker.control import LeaseLost
    from worker.models import count_params
    from worker.stages.frontier import Frontier

    monkeypatch.setattr(export, "cpu_latency_ms", lambda m, e, runs=50: count_params(m) / 100)
    prune = {"latency_ratio": 0.6, "recovery_epochs": 1}
    job_id = submit(sqlite_settings, {**CONV, "compress": {"prune": prune}})

    def lost(*_args: object) -> None:
        raise LeaseLost(job_id)

    with monkeypatch.context() as patch:
        patch.setattr(Frontier, "run", lost)
        lifecycle.run(job_id, sqlite_settings)
    work = sqlite_settings.work_root / "jobs" / job_id
    recovered = load_file(str(work / "pruned.safetensors"))

    # Measured again, every model would now be fast enough before any step.
    monkeypatch.setattr(export, "cpu_latency_ms", lambda m, e, runs=50: 0.0)
    with session_scope(sqlite_settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempt == 2
    pruned = job.result["pruned"]
    # The first attempt's architecture: the same parameters, pruned as far as it pruned.
    pruned_events = [e for e in events if e.message.startswith("prune: ") and e.data]
    assert [e.data["params"] for e in pruned_events] == [pruned["params"]] * 2
    assert pruned["params"] <= 0.6 * job.result["student"]["params"]
    shapes = {name: tuple(t.shape) for name, t in recovered.items()}
    assert shapes["net.conv1.weight"][0] < 8  # narrower than the student's 8 channels
    assert any("reusing pruned weights" in e.message for e in events)
    assert [m.epoch for m in metrics if m.stage == "prune"] == [1]  # not trained twice


def test_int8_beyond_its_tolerance_is_trained_with_fake_quantisation_and_quantised_again(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    """Ranges calibrated on a single example lose accuracy in int8; with no tolerance for any
    loss the stage trains the student with fake-quantised weights from the stored labels and
    quantises the result: the report keeps both verdicts, the downloaded graph is the new one."""
    quantize = {"kind": "int8", "calibration_examples": 1, "tolerance": 0.0, "qat_epochs": 2}
    job_id = submit(sqlite_settings, {**CONV, "compress": {"quantize": quantize}})
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    int8 = job.result["int8"]
    post_training = int8["qat"]["post_training"]
    assert post_training["loss"]["within"] is False
    assert any(e.kind == "warning" and e.message.startswith("quantize: lost") for e in events)
    assert int8["qat"]["epochs"] == 2 and int8["qat"]["labels"] == "stored"
    assert int8["qat"]["layers"] == 4  # three convolutions and the head
    assert [m.epoch for m in metrics if m.stage == "quantize"] == [1, 2]
    assert int8["loss"]["lost"] == pytest.approx(
        int8["float_onnx"]["test_accuracy"] - int8["test_accuracy"], abs=1e-4
    )
    accuracy = downloaded_accuracy(sqlite_settings, job_id, tmp_path)
    assert accuracy == pytest.approx(int8["test_accuracy"], abs=1e-3)
