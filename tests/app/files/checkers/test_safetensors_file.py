"""Teacher .safetensors uploads: the header is checked by hand; nothing else is ever loaded."""

import json
import pickle
import struct
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from safetensors.numpy import save

from tests.app.files.checkers.test_npz import WritesAFile
from tests.app.files.conftest import refused, upload, upload_checked


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_valid_weights_are_described(client: TestClient) -> None:
    content = save(
        {"fc.weight": np.zeros((3, 4), np.float32), "fc.bias": np.zeros(3, np.float16)},
        metadata={"format": "pt"},
    )
    body = upload_checked(client, "teacher.safetensors", content, "teacher")
    assert body["status"] == "ready", body
    assert body["info"] == {
        "format": "safetensors",
        "tensors": {
            "fc.bias": {"dtype": "F16", "shape": [3]},
            "fc.weight": {"dtype": "F32", "shape": [3, 4]},
        },
        "tensor_count": 2,
        "params": 15,
    }


def test_pickle_renamed_safetensors_or_pt_is_never_loaded(
    client: TestClient, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps({"state_dict": WritesAFile(marker)})
    body = upload_checked(client, "teacher.safetensors", payload, "teacher")
    refused(body, "not a safetensors file")
    assert upload(client, "teacher.pt", payload, "teacher").status_code == 422
    assert not marker.exists()


def test_header_claiming_gigabytes_is_refused(client: TestClient) -> None:
    content = struct.pack("<Q", 5 * 1024**3) + b'{"a": 1}'
    refused(upload_checked(client, "t.safetensors", content, "teacher"), "5368709120")


def test_inconsistent_tensors_are_refused_by_name(client: TestClient) -> None:
    good = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    cases = [
        ({"w": {**good, "dtype": "Q7"}}, 8, ("'w'", "unknown dtype")),
        ({"w": {**good, "shape": [2, "x"]}}, 8, ("'w'", "shape")),
        ({"w": {**good, "data_offsets": [0, 800]}}, 8, ("'w'", "outside")),
        ({"w": {**good, "shape": [3]}}, 8, ("'w'", "needs 12 bytes")),
        ({"w": good, "v": good}, 8, ("overlap",)),
        ({}, 0, ("no tensors",)),
    ]
    for header, size, needles in cases:
        body = upload_checked(
            client, "t.safetensors", safetensors_bytes(header, b"\0" * size), "teacher"
        )
        refused(body, *needles)
    garbage = struct.pack("<Q", 4) + b"{{{{"
    refused(upload_checked(client, "t.safetensors", garbage, "teacher"), "not valid JSON")
