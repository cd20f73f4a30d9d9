"""Teacher .gguf uploads: a causal LM in llama.cpp's format described from its header; a header
that lies about its counts, lengths or tensors, another format renamed .gguf, an architecture
transformers cannot read and a file without a tokenizer are refused, nothing allocated for what
the header claims and nothing executed."""

import struct
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.app.files.conftest import refused, upload_checked
from tests.app.files.test_usage import assert_422, job
from tests.worker.teachers.tiny_gguf import save_tiny_gguf

# The fixed start of a GGUF file: magic, version (u32), tensor count and metadata count (u64).
TENSOR_COUNT, KV_COUNT, FIRST_KEY_LENGTH = 8, 16, 24


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return save_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf").read_bytes()


def patched(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<Q", value) + data[offset + 8 :]


def test_a_gguf_file_is_described_from_its_header(client: TestClient, gguf_bytes: bytes) -> None:
    body = upload_checked(client, "tiny.gguf", gguf_bytes, "teacher")
    assert body["status"] == "ready", body
    info = body["info"]
    assert info["format"] == "gguf" and info["task"] == "language_model"
    assert (info["model_type"], info["name"], info["version"]) == ("llama", "tiny-llama", 3)
    assert (info["vocab_size"], info["layers"], info["context_length"]) == (320, 4, 128)
    assert info["tensor_types"] == {"F32": info["tensors"]}
    # 320 x 32 embeddings and head, 4 layers of attention (32x32 + 2 x 16x32 + 32x32), MLP
    # (3 x 32x64) and two norms, the final norm.
    per_layer = 32 * 32 * 2 + 16 * 32 * 2 + 3 * 32 * 64 + 2 * 32
    assert info["params"] == 2 * 320 * 32 + 4 * per_layer + 32

    teacher = {"source": "gguf", "file_id": body["id"]}
    response = client.post("/v1/jobs", json=job(teacher=teacher))
    assert_422(response, "teacher.source", "serves the task language_model")
    lm = {
        "task": "language_model",
        "dataset": {"name": "pystdlib"},
        "teacher": teacher,
        "student": {"source": "from_teacher", "layers": "every_other"},
    }
    response = client.post("/v1/jobs", json={**lm, "distill": {"method": "seqkd"}})
    assert_422(response, "distill.method", "learns text the teacher writes")
    response = client.post("/v1/jobs", json=lm)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["export"] == ["safetensors", "onnx", "hf"]
    assert spec["distill"]["soft_label_top_k"] == 16


@pytest.mark.parametrize(
    ("offset", "value", "needles"),
    [
        (TENSOR_COUNT, 2**60, ("the tensor count is 1152921504606846976",)),
        (KV_COUNT, 2**40, ("the metadata count is 1099511627776",)),
        (FIRST_KEY_LENGTH, 2**50, ("the length of a metadata key",)),
    ],
)
def test_a_header_that_lies_about_a_count_or_a_length_is_refused(
    client: TestClient, gguf_bytes: bytes, offset: int, value: int, needles: tuple[str, ...]
) -> None:
    body = upload_checked(client, "lie.gguf", patched(gguf_bytes, offset, value), "teacher")
    refused(body, "lies", *needles)


def test_tensors_past_the_end_of_the_file_are_refused(
    client: TestClient, gguf_bytes: bytes
) -> None:
    body = upload_checked(client, "cut.gguf", gguf_bytes[: len(gguf_bytes) - 1000], "teacher")
    refused(body, "'output.weight' lies", "end past the file's")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x80\x04\x95pickle" + bytes(64), "not a GGUF file"),
        (b"GGUF" + struct.pack("<I", 99) + bytes(16), "GGUF version 99"),
        (b"GG", "not a GGUF file"),
    ],
)
def test_another_format_renamed_gguf_is_refused(
    client: TestClient, content: bytes, needle: str
) -> None:
    refused(upload_checked(client, "renamed.gguf", content, "teacher"), needle)


def test_an_architecture_transformers_cannot_read_or_no_tokenizer_is_refused(
    client: TestClient, tmp_path: Path
) -> None:
    import gguf
    import numpy as np

    def write(architecture: str, tokens: bool) -> bytes:
        path = tmp_path / f"{architecture}-{tokens}.gguf"
        writer = gguf.GGUFWriter(str(path), architecture)
        if tokens:
            writer.add_tokenizer_model("gpt2")
            writer.add_token_list(["a", "b", "c"])
        writer.add_tensor("token_embd.weight", np.zeros((3, 4), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()

    body = upload_checked(client, "t5.gguf", write("t5", True), "teacher")
    refused(body, "architecture is 't5'", "llama")
    body = upload_checked(client, "notok.gguf", write("llama", False), "teacher")
    refused(body, "has no tokenizer")
