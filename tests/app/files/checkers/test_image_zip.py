"""Image-folder .zip uploads: decoded in memory, never extracted; zip and decompression bombs,
paths leaving the folder and symlinks refused."""

import io
import struct
import zipfile
import zlib
from collections.abc import Callable

import numpy as np
from fastapi.testclient import TestClient

from app.settings import Settings
from app.store.local import LocalStore
from tests.app.files.conftest import (
    npz_bytes,
    png_bytes,
    refused,
    stored_array,
    upload,
    upload_checked,
    zip_bytes,
)


def jpeg_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (0, 0, 255)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_class_folders_become_labelled_uint8_images(client: TestClient, settings: Settings) -> None:
    archive = zip_bytes(
        {
            "pets/dog/1.png": png_bytes(color=(255, 255, 255)),
            "pets/cat/a.png": png_bytes(color=(0, 0, 0)),
            "pets/cat/b.jpg": jpeg_bytes(),
            "__MACOSX/pets/cat/._a.png": b"junk",
        }
    )
    body = upload_checked(client, "pets.zip", archive, "dataset", image_size="4x3", channels=1)
    assert body["status"] == "ready", body
    info = body["info"]
    assert info["input_shape"] == [1, 3, 4]
    assert (info["rows"], info["test_rows"], info["dtype"]) == (3, 0, "uint8")
    assert info["class_names"] == ["cat", "dog"] and info["num_classes"] == 2
    x = stored_array(settings, info["arrays"]["x"])
    assert x.shape == (3, 1, 3, 4) and x.dtype == np.uint8
    assert stored_array(settings, info["arrays"]["y"]).tolist() == [0, 0, 1]
    assert x[0].max() == 0 and x[2].min() == 255


def test_train_and_test_folders_give_the_test_split(client: TestClient) -> None:
    archive = zip_bytes(
        {
            "train/a/1.png": png_bytes(),
            "train/b/1.png": png_bytes(),
            "train/b/2.png": png_bytes(),
            "test/a/9.png": png_bytes(),
        }
    )
    info = upload_checked(client, "d.zip", archive, "dataset")["info"]
    assert (info["rows"], info["test_rows"], info["input_shape"]) == (3, 1, [3, 32, 32])
    assert set(info["arrays"]) == {"x", "y", "x_test", "y_test"}


def test_flat_zip_is_unlabelled(client: TestClient) -> None:
    info = upload_checked(
        client, "d.zip", zip_bytes({"1.png": png_bytes(), "2.png": png_bytes()}), "dataset"
    )["info"]
    assert info["labelled"] is False and info["rows"] == 2 and set(info["arrays"]) == {"x"}


def test_members_leaving_the_folder_are_refused(client: TestClient) -> None:
    for name in ("../evil/1.png", "a/../../evil.png", "/etc/evil/1.png"):
        archive = zip_bytes({"a/ok.png": png_bytes(), name: png_bytes()})
        refused(upload_checked(client, "d.zip", archive, "dataset"), repr(name))


def test_symlink_members_are_refused(client: TestClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/ok.png", png_bytes())
        link = zipfile.ZipInfo("b/link.png")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    refused(upload_checked(client, "d.zip", buffer.getvalue(), "dataset"), "'b/link.png'", "link")


def test_zip_bomb_is_refused(client: TestClient) -> None:
    archive = zip_bytes(
        {"a/ok.png": png_bytes(), "b/bomb.png": b"\0" * 5_000_000}, zipfile.ZIP_DEFLATED
    )
    refused(upload_checked(client, "d.zip", archive, "dataset"), "'b/bomb.png'", "zip bomb")


def decompression_bomb_png(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims width x height pixels."""
    png = png_bytes((1, 1))
    ihdr = struct.pack(">II", width, height) + png[24:29]
    chunk = b"IHDR" + ihdr
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def test_decompression_bomb_png_is_refused_before_decoding(client: TestClient) -> None:
    archive = zip_bytes(
        {"a/ok.png": png_bytes(), "b/huge.png": decompression_bomb_png(60000, 60000)}
    )
    refused(
        upload_checked(client, "d.zip", archive, "dataset"), "'b/huge.png'", "3600000000 pixels"
    )


def test_other_members_and_layouts_are_refused(client: TestClient) -> None:
    cases = [
        ({"a/1.png": png_bytes(), "a/readme.txt": b"hi"}, ("'a/readme.txt'", "not a .png")),
        ({"a/1.png": png_bytes(), "b/2.png": b"not an image"}, ("'b/2.png'", "not a readable")),
        ({"a/1.png": png_bytes(), "2.png": png_bytes()}, ("layout",)),
        ({"train/a/1.png": png_bytes(), "test/a/2.png": png_bytes()}, ("one class folder",)),
    ]
    for members, needles in cases:
        refused(upload_checked(client, "d.zip", zip_bytes(members), "dataset"), *needles)


def test_decoded_pixels_past_the_tenant_quota_are_refused_before_anything_is_stored(
    make_client: Callable[..., TestClient], settings: Settings
) -> None:
    # A few hundred bytes of PNGs that would take 2 x 3 x 1024 x 1024 bytes decoded.
    quota = 1024 * 1024
    client = make_client(tenant_max_stored_bytes=quota)
    archive = zip_bytes({"a/1.png": png_bytes(), "b/1.png": png_bytes()})
    assert len(archive) < 2000
    body = upload_checked(client, "d.zip", archive, "dataset", image_size=1024)
    refused(body, "storage quota", str(2 * 3 * 1024 * 1024))
    assert body["info"] is None
    store = LocalStore(settings.artifact_url)
    # No prepared array was stored, and the refused upload itself is removed.
    assert store.list_keys(f"files/{body['id']}/") == []
    # Nothing of it counts against the quota: a small upload still fits.
    assert upload(client, "e.npz", npz_bytes(x=np.zeros((2, 2))), "dataset").status_code == 201
