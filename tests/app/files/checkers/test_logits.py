"""Teacher logits uploads: 2-D, float, finite, at least 2 classes."""

import numpy as np
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.files.conftest import npy_bytes, npz_bytes, refused, stored_array, upload_checked


def test_npy_logits_float64_become_float32(client: TestClient, settings: Settings) -> None:
    logits = np.arange(12, dtype=np.float64).reshape(6, 2)
    body = upload_checked(client, "l.npy", npy_bytes(logits), "logits")
    assert body["status"] == "ready", body
    info = body["info"]
    assert {k: info[k] for k in ("format", "rows", "num_classes", "test_rows", "dtype")} == {
        "format": "npy",
        "rows": 6,
        "num_classes": 2,
        "test_rows": 0,
        "dtype": "float32",
    }
    stored = stored_array(settings, info["arrays"]["logits"])
    assert stored.dtype == np.float32 and stored.tolist() == logits.tolist()


def test_npz_logits_with_test_rows_keep_float16(client: TestClient) -> None:
    body = upload_checked(
        client,
        "l.npz",
        npz_bytes(logits=np.zeros((5, 3), np.float16), logits_test=np.ones((2, 3), np.float16)),
        "logits",
    )
    info = body["info"]
    assert (info["format"], info["rows"], info["test_rows"], info["dtype"]) == (
        "npz",
        5,
        2,
        "float16",
    )
    assert set(info["arrays"]) == {"logits", "logits_test"}


def test_logits_problems_name_the_array_and_row(client: TestClient) -> None:
    with_nan = np.zeros((4, 3), np.float32)
    with_nan[3, 0] = np.nan
    cases = [
        (npy_bytes(with_nan), "l.npy", ("logits row 3", "NaN")),
        (npy_bytes(np.zeros((4, 3), np.int64)), "l.npy", ("logits", "float")),
        (npy_bytes(np.zeros((4, 1), np.float32)), "l.npy", ("1 columns",)),
        (npy_bytes(np.zeros(4, np.float32)), "l.npy", ("2-D",)),
        (npz_bytes(scores=np.zeros((4, 3))), "l.npz", ("'scores'",)),
        (
            npz_bytes(logits=np.zeros((4, 3)), logits_test=np.zeros((2, 4))),
            "l.npz",
            ("logits_test has 4 columns",),
        ),
        (b"\x93NUMPY\x01\x00" + b"garbage", "l.npy", ("logits",)),
    ]
    for content, name, needles in cases:
        refused(upload_checked(client, name, content, "logits"), *needles)
