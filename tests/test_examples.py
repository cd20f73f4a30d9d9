"""Every spec in examples/ is accepted by the API as it is; the bring-your-own-data scripts work.

examples/uploads/*.json name uploaded files (placeholders), so they are checked once filled in,
not POSTed (the glob below does not descend into examples/uploads/).
"""

import gzip
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.jobs import resolve_spec
from distillery.types import JobCreate

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_example_is_accepted(client: TestClient, path: Path) -> None:
    response = client.post("/v1/jobs", json=json.loads(path.read_text()))
    assert response.status_code == 201, response.text


def test_the_examples_the_readme_and_makefile_name_exist() -> None:
    names = {"demo.json", "digits.json", "mnist1d-transfer.json"}
    assert {p.name for p in EXAMPLES} >= names
    assert "examples/demo.json" in (ROOT / "Makefile").read_text()


# --- bring your own data and teacher (examples/byo.sh and the scripts it runs) ---------------

ROOT = Path(__file__).resolve().parents[1]
UPLOAD_TEMPLATES = sorted((ROOT / "examples" / "uploads").glob("*.json"))
PLACEHOLDERS = {
    "<FASHION_FILE_ID>": "file_dataset0123",
    "<TRANSFER_FILE_ID>": "file_transfer012",
    "<TEACHER_FILE_ID>": "file_teacher0123",
    "<LOGITS_FILE_ID>": "file_logits01234",
    "<SENTIMENT_FILE_ID>": "file_sentiment01",
    "<SENTIMENT_TRANSFER_FILE_ID>": "file_sentiment02",
    "<FORTUNES_FILE_ID>": "file_fortunes012",
    "<MINILM_FILE_ID>": "file_minilm01234",
}


def _load_example(name: str) -> ModuleType:
    """examples/ is not a package: import a script there by path."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file as the format defines it: magic, big-endian dims, big-endian data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_the_idx_reader_reads_plain_and_gzipped_files(tmp_path: Path, dtype: type) -> None:
    fashion = _load_example("fashion_mnist_to_npz")
    array = (np.arange(3 * 4 * 5) * 7 % 251).astype(dtype).reshape(3, 4, 5)
    plain = tmp_path / "images-idx3-ubyte"
    plain.write_bytes(_idx_bytes(array))
    zipped = tmp_path / "images-idx3-ubyte.gz"
    zipped.write_bytes(gzip.compress(_idx_bytes(array)))

    for path in (plain, zipped):
        read = fashion.read_idx(path)
        assert read.dtype == np.dtype(dtype) and read.dtype.isnative
        np.testing.assert_array_equal(read, array)


def test_the_idx_reader_refuses_a_truncated_file(tmp_path: Path) -> None:
    fashion = _load_example("fashion_mnist_to_npz")
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_idx_bytes(np.arange(10, dtype=np.uint8))[:-1])
    with pytest.raises(fashion.IdxError, match="needs 10 bytes"):
        fashion.read_idx(path)
    path.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(fashion.IdxError, match="not an IDX file"):
        fashion.read_idx(path)


def test_fashion_mnist_to_npz_writes_an_upload_ready_npz(tmp_path: Path) -> None:
    """Debian's layout (gzipped IDX files), 10 classes, a class-balanced --train-limit."""
    fashion = _load_example("fashion_mnist_to_npz")
    rng = np.random.default_rng(0)
    source = tmp_path / "fashion-mnist"
    source.mkdir()
    for prefix, rows in (("train", 60), ("t10k", 20)):
        images = rng.integers(0, 256, size=(rows, 28, 28), dtype=np.uint8)
        labels = (np.arange(rows) * 3 % 10).astype(np.uint8)
        (source / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
        (source / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    output = tmp_path / "out" / "fashion.npz"

    fashion.main(["--source-dir", str(source), "--output", str(output), "--train-limit", "30"])

    with np.load(output, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    assert set(arrays) == {"x", "y", "x_test", "y_test", "class_names"}
    assert arrays["x"].dtype == np.uint8 and arrays["x"].shape == (30, 1, 28, 28)
    assert arrays["y"].dtype == np.int64 and arrays["y"].shape == (30,)
    assert arrays["x_test"].dtype == np.uint8 and arrays["x_test"].shape == (20, 1, 28, 28)
    assert arrays["y_test"].dtype == np.int64
    assert np.bincount(arrays["y"], minlength=10).tolist() == [3] * 10
    assert arrays["class_names"].dtype.kind == "U"
    assert arrays["class_names"].tolist()[:2] == ["T-shirt/top", "Trouser"]
    assert len(arrays["class_names"]) == 10
    # The rows kept are the earliest of each class, in file order, with their own labels.
    train_images = fashion.read_idx(source / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(arrays["x"][:, 0], train_images[:30])


def test_the_onnx_teacher_runs_on_raw_inputs_and_matches_its_logits(tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    dataset = tmp_path / "tiny.npz"
    np.savez(
        dataset,
        x=rng.integers(0, 256, size=(200, 1, 28, 28), dtype=np.uint8),
        y=rng.integers(0, 10, size=200).astype(np.int64),
        x_test=rng.integers(0, 256, size=(30, 1, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, size=30).astype(np.int64),
    )
    out = tmp_path / "teacher"
    script = ROOT / "examples" / "train_onnx_teacher.py"
    args = ["--epochs", "1", "--threads", "1", "--output-dir", str(out)]
    subprocess.run(
        [sys.executable, str(script), str(dataset), *args],
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )

    with np.load(out / "logits.npz", allow_pickle=False) as data:
        logits, logits_test = data["logits"], data["logits_test"]
    assert logits.dtype == np.float32 and logits.shape == (200, 10)
    assert logits_test.dtype == np.float32 and logits_test.shape == (30, 10)
    session = onnxruntime.InferenceSession(
        str(out / "teacher.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["x"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    with np.load(dataset, allow_pickle=False) as data:
        x, x_test = data["x"].astype(np.float32), data["x_test"].astype(np.float32)
    # Raw 0..255 pixels in, any batch size: the normalisation is inside the graph.
    ran = np.concatenate([session.run(None, {"x": x[i : i + 64]})[0] for i in range(0, 200, 64)])
    assert np.abs(ran - logits).max() < 1e-3
    assert np.abs(session.run(None, {"x": x_test})[0] - logits_test).max() < 1e-3
    assert (out / "teacher.onnx").stat().st_size > 100_000  # the weights are inside, one file
    assert list(out.glob("*.data")) == []
    assert "test_accuracy" in json.loads((out / "teacher.json").read_text())


METHODS = ["kd", "dkd", "fitnets", "at", "kd-augment"]
SENTIMENT_METHODS = ["kd", "reverse-kl", "jsd"]


def test_the_upload_templates_are_those_the_example_scripts_submit() -> None:
    byo = {"fashion-mnist-cnn", "fashion-mnist-onnx-teacher", "fashion-mnist-logits"}
    # METHODS=compress runs the one with compress steps instead of the five methods.
    methods = {f"fashion-mnist-resnet-{m}" for m in [*METHODS, "compress"]}
    sentiment = {f"sentiment-{m}" for m in SENTIMENT_METHODS}
    encoder = {"fortunes-minilm-distilbert"}
    assert {p.stem for p in UPLOAD_TEMPLATES} == byo | methods | sentiment | encoder
    assert "fortunes-minilm-distilbert" in (ROOT / "examples" / "encoder_distill.sh").read_text()
    script = (ROOT / "examples" / "sentiment_methods.sh").read_text()
    assert "sentiment-$method" in script
    assert f"for method in {' '.join(SENTIMENT_METHODS)}; do" in script
    script = (ROOT / "examples" / "byo.sh").read_text()
    assert all(name in script for name in byo)
    script = (ROOT / "examples" / "fashion_mnist_methods.sh").read_text()
    assert "fashion-mnist-resnet-$method" in script
    assert f"for method in ${{METHODS:-{' '.join(METHODS)}}}; do" in script


@pytest.mark.parametrize("path", UPLOAD_TEMPLATES, ids=[p.name for p in UPLOAD_TEMPLATES])
def test_an_upload_template_is_a_valid_job_once_its_file_ids_are_filled(path: Path) -> None:
    """Not POSTed: the files do not exist here; the spec's shape and names are checked."""
    text = path.read_text()
    for placeholder, file_id in PLACEHOLDERS.items():
        text = text.replace(placeholder, file_id)
    assert "_FILE_ID>" not in text

    spec = resolve_spec(JobCreate.model_validate(json.loads(text)))
    if path.stem.startswith("sentiment-"):
        assert spec["dataset"]["name"] == "file:file_sentiment01"
        assert spec["dataset"]["transfer"]["name"] == "file:file_sentiment02"
        archs = (spec["teacher"]["arch"], spec["student"]["arch"])
        assert archs == ("text_cnn", "text_cnn")
        assert spec["distill"]["method"] == path.stem.removeprefix("sentiment-").replace("-", "_")
        return
    if path.stem == "fortunes-minilm-distilbert":  # fine-tuned, distilled into 3 layers, int8
        assert spec["dataset"]["name"] == "file:file_fortunes012"
        assert spec["teacher"] == {**spec["teacher"], "source": "hf", "file_id": "file_minilm01234"}
        assert spec["teacher"]["train"]["epochs"] > 0
        assert spec["student"]["source"] == "from_teacher"
        assert spec["distill"]["method"] == "distilbert"
        assert spec["compress"]["quantize"]["mode"] == "dynamic"
        return

    assert spec["dataset"]["name"] == "file:file_dataset0123"
    assert spec["dataset"]["transfer"]["name"] == "file:file_transfer012"
    if path.stem.startswith("fashion-mnist-resnet-"):
        method = path.stem.removeprefix("fashion-mnist-resnet-")
        assert spec["teacher"]["source"] == "weights"
        assert spec["teacher"]["file_id"] == "file_teacher0123"
        assert (spec["teacher"]["arch"], spec["teacher"]["params"]["depth"]) == ("resnet_cifar", 56)
        assert (spec["student"]["arch"], spec["student"]["params"]["depth"]) == ("resnet_cifar", 20)
        if method == "compress":  # kd, then pruned and quantised
            assert spec["distill"]["method"] == "kd"
            assert set(spec["compress"]) == {"prune", "quantize"}
            return
        assert spec["distill"]["method"] == method.removesuffix("-augment")
        assert (spec["dataset"].get("augment") is not None) == method.endswith("-augment")
        return
    expected = {
        "fashion-mnist-cnn": ("train", None),
        "fashion-mnist-onnx-teacher": ("onnx", "file_teacher0123"),
        "fashion-mnist-logits": ("logits", "file_logits01234"),
    }[path.stem]
    assert (spec["teacher"]["source"], spec["teacher"].get("file_id")) == expected
    assert spec["student"]["arch"] == "mlp"


@pytest.mark.parametrize("script", ["byo.sh", "fashion_mnist_methods.sh", "sentiment_methods.sh"])
def test_the_example_scripts_are_valid_bash(script: str) -> None:
    subprocess.run(["bash", "-n", str(ROOT / "examples" / script)], check=True)


def test_the_fortune_topics_are_balanced_distinct_and_labelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/fortune_topics.py on a stand-in fortunes folder (Debian's files: quotations
    separated by lines holding '%')."""
    fortunes = _load_example("fortune_topics")
    folder = tmp_path / "fortunes"
    folder.mkdir()
    for topic in ("a", "b"):
        # Five distinct quotations and one repeated.
        quotes = [f"{topic} quote {i}\n  on two lines" for i in range(5)]
        quotes.append(quotes[0])
        (folder / topic).write_text("\n%\n".join(quotes) + "\n")
    monkeypatch.setattr(fortunes, "FOLDER", folder)
    out = str(tmp_path / "out")
    monkeypatch.setattr(sys, "argv", ["x", out, "--topics", "a", "b", "--per-topic", "4"])
    fortunes.main()
    rows = [json.loads(line) for line in (tmp_path / "out" / "fortunes.jsonl").open()]
    assert len(rows) == 8 and {r["label"] for r in rows} == {"a", "b"}
    assert len({r["text"] for r in rows}) == 8
    assert all("\n" not in r["text"] and "  " not in r["text"] for r in rows)


def test_the_example_scripts_summary_line_reads_a_compressed_jobs_result() -> None:
    """examples/http.sh's run_job prints one line per finished job with its Python (quoted
    inside the shell's single quotes: a single quote in it would end the program early)."""
    script = (ROOT / "examples" / "http.sh").read_text()
    program = script.split('"$PYTHON" -c \'\n')[-1].split('\n\' "$name"')[0]
    assert "'" not in program
    row = {"test_accuracy": 0.8, "params": 10, "bytes": 40}
    result = {
        "teacher": row,
        "student": row,
        "baseline": row,
        "pruned": row,
        "int8": {**row, "float_onnx": row},
        "compression": {"kd_gain": 0.01},
    }
    out = subprocess.run(
        [sys.executable, "-c", program, "name", "job_1", "12"],
        input=json.dumps({"result": result}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("name job_1: teacher 0.8 student 0.8 baseline 0.8 kd_gain 0.01")
    assert "pruned 0.8 (10 params) int8 0.8 (40 bytes, float graph 0.8 40 bytes) wall 12 s" in out
