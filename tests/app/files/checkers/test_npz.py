"""Dataset .npz uploads: arrays read by streaming their .npy headers; no pickle ever loaded."""

import io
import pickle
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from app.files.splits import DESCRIPTION, UNLABELLED
from app.settings import Settings
from tests.app.files.conftest import npz_bytes, refused, stored_array, upload_checked, zip_bytes


class WritesAFile:
    """Unpickling this creates the marker file: proof that nothing unpickled the upload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_labelled_npz_is_prepared_by_the_contract(client: TestClient, settings: Settings) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 1, 4, 4))  # float64: stored as float32
    y = np.array([0, 1, 2] * 4, dtype=np.int32)
    x_test = rng.normal(size=(5, 1, 4, 4))
    y_test = np.array([2, 1, 0, 1, 2], dtype=np.uint8)
    names = np.array(["cat", "dog", "eel"])
    body = upload_checked(
        client,
        "d.npz",
        npz_bytes(x=x, y=y, x_test=x_test, y_test=y_test, class_names=names),
        "dataset",
    )
    assert body["status"] == "ready", body
    info = body["info"]
    file_id = body["id"]
    assert info == {
        "format": "npz",
        "rows": 12,
        "test_rows": 5,
        "input_shape": [1, 4, 4],
        "dtype": "float32",
        "labelled": True,
        "num_classes": 3,
        "class_names": ["cat", "dog", "eel"],
        "test_split": "the file's own x_test / y_test",
        "arrays": {
            "x": f"files/{file_id}/x.npy",
            "y": f"files/{file_id}/y.npy",
            "x_test": f"files/{file_id}/x_test.npy",
            "y_test": f"files/{file_id}/y_test.npy",
        },
    }
    stored_x = stored_array(settings, info["arrays"]["x"])
    assert stored_x.dtype == np.float32 and np.allclose(stored_x, x.astype(np.float32))
    stored_y = stored_array(settings, info["arrays"]["y_test"])
    assert stored_y.dtype == np.int64 and stored_y.tolist() == y_test.tolist()


def test_uint8_images_stay_uint8_and_fortran_order_is_read(
    client: TestClient, settings: Settings
) -> None:
    x = np.asfortranarray(np.arange(6 * 2 * 3, dtype=np.uint8).reshape(6, 2, 3))
    body = upload_checked(
        client, "d.npz", npz_bytes(compressed=True, x=x, y=np.array([0, 1] * 3)), "dataset"
    )
    assert body["info"]["dtype"] == "uint8"
    assert body["info"]["test_split"] == DESCRIPTION
    assert body["info"]["class_names"] is None and body["info"]["num_classes"] == 2
    assert (stored_array(settings, body["info"]["arrays"]["x"]) == x).all()


def test_npz_without_y_is_an_unlabelled_transfer_set(client: TestClient) -> None:
    body = upload_checked(client, "t.npz", npz_bytes(x=np.ones((7, 3), np.float32)), "dataset")
    info = body["info"]
    assert (info["labelled"], info["num_classes"], info["rows"]) == (False, None, 7)
    assert set(info["arrays"]) == {"x"}
    assert info["test_split"] == UNLABELLED


def test_pickled_member_is_refused_without_unpickling(client: TestClient, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(WritesAFile(marker))
    body = upload_checked(
        client,
        "d.npz",
        zip_bytes({"x.npy": payload, "y.npy": payload}),
        "dataset",
    )
    refused(body, "x", "not a .npy array", "pickles are never loaded")
    object_array = np.empty(2, dtype=object)
    object_array[:] = [WritesAFile(marker), WritesAFile(marker)]
    buffer = io.BytesIO()
    np.save(buffer, object_array, allow_pickle=True)
    body = upload_checked(client, "d.npz", zip_bytes({"x.npy": buffer.getvalue()}), "dataset")
    refused(body, "x", "Python objects")
    other = upload_checked(client, "d.npz", zip_bytes({"x.pkl": payload}), "dataset")
    refused(other, "x.pkl", "not a .npy array")
    assert not marker.exists()


def test_npz_problems_name_the_array_and_row(client: TestClient) -> None:
    x = np.zeros((4, 2), np.float32)
    bad_x = x.copy()
    bad_x[2, 1] = np.nan
    cases = [
        (dict(x=bad_x, y=np.array([0, 1, 0, 1])), ("x row 2", "NaN")),
        (dict(x=x, y=np.array([0, 1, -1, 1])), ("y row 2", "-1")),
        (
            dict(x=x, y=np.array([0, 1, 5, 1]), class_names=np.array(["a", "b"])),
            ("y row 2", "class 5", "class_names has 2"),
        ),
        (dict(x=x, y=np.array([0.0, 1, 0, 1])), ("y", "integer")),
        (dict(x=x, y=np.array([0, 1, 0])), ("y has 3 rows", "x has 4")),
        (dict(x=x, y=np.array([0, 1, 0, 1]), x_test=np.zeros((2, 3))), ("x_test", "[3]", "[2]")),
        (dict(x=x, y=np.array([0, 0, 0, 0])), ("1 class",)),
        (dict(x=np.array(["a", "b"]), y=np.array([0, 1])), ("x must be numeric",)),
        (dict(y=np.array([0, 1])), ("no array 'x'",)),
        (dict(x=x, z=x), ("'z'",)),
    ]
    for arrays, needles in cases:
        body = upload_checked(client, "d.npz", npz_bytes(**arrays), "dataset")
        refused(body, *needles)


def test_npz_member_compressed_past_the_ratio_is_refused(client: TestClient) -> None:
    x = np.zeros((2000, 100), np.float32)
    body = upload_checked(
        client, "d.npz", npz_bytes(compressed=True, x=x, y=np.arange(2000) % 2), "dataset"
    )
    refused(body, "x.npy", "zip bomb")
