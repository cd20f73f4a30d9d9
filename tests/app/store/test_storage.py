"""The store contract, the same assertions on a local folder and on a real S3-protocol server."""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.store import make_store
from app.store.base import Store
from app.store.cache import DownloadCache
from app.store.local import LocalStore
from tests.conftest import s3_client

MIB = 1024 * 1024
MakeStore = Callable[..., Store]


@pytest.fixture(params=["local", "s3"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Builds the store under test; keyword arguments go to S3Store (transfer settings)."""
    if request.param == "local":
        return lambda **_: LocalStore(str(tmp_path / "store"))
    from app.store.s3 import S3Store

    url = str(request.getfixturevalue("s3_bucket_url"))
    endpoint = str(request.getfixturevalue("s3_server"))
    return lambda **kwargs: S3Store(url, endpoint_url=endpoint, **kwargs)


@pytest.fixture
def store(new_store: MakeStore) -> Store:
    return new_store()


def write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def read(store: Store, key: str) -> bytes:
    return b"".join(store.open_chunks(key))


def test_put_file_returns_size_and_sha256_and_the_bytes_come_back(
    store: Store, tmp_path: Path
) -> None:
    source = tmp_path / "upload.bin"
    data = write(source, 2 * MIB + 123)  # more than one chunk
    assert store.put_file("jobs/job_1/student.onnx", source) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert source.read_bytes() == data  # copied, not taken
    assert store.exists("jobs/job_1/student.onnx")
    assert store.size("jobs/job_1/student.onnx") == len(data)
    assert read(store, "jobs/job_1/student.onnx") == data


def test_an_empty_file_round_trips(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")
    assert store.put_file("files/f/empty", source) == (0, hashlib.sha256(b"").hexdigest())
    assert store.size("files/f/empty") == 0
    assert read(store, "files/f/empty") == b""


def test_put_file_replaces_an_existing_key(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "a"
    source.write_bytes(b"first")
    store.put_file("jobs/j/report.json", source)
    source.write_bytes(b"second, longer")
    store.put_file("jobs/j/report.json", source)
    assert read(store, "jobs/j/report.json") == b"second, longer"


def test_move_consumes_the_source(store: Store, tmp_path: Path) -> None:
    staged = store.staging_dir() / f"upload-{os.urandom(4).hex()}"
    data = write(staged, 1000)
    size, _ = store.put_file("files/file_1/upload", staged, move=True)
    assert size == 1000
    assert not staged.exists()
    assert read(store, "files/file_1/upload") == data


def test_a_missing_key(store: Store, tmp_path: Path) -> None:
    assert not store.exists("jobs/none/x")
    with pytest.raises(FileNotFoundError):
        store.size("jobs/none/x")
    with pytest.raises(FileNotFoundError):
        read(store, "jobs/none/x")
    assert store.list_keys("jobs/none/") == []


def test_local_path_gives_a_readable_copy(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "x.npy"
    data = write(source, 3000)
    store.put_file("files/file_2/x.npy", source)
    cache = DownloadCache(tmp_path / "cache", 10**9)
    path = store.local_path("files/file_2/x.npy", cache)
    assert path.read_bytes() == data
    if store.remote:
        assert path.is_relative_to(cache.root)
    # Asked again, the same file (a remote store reuses its complete copy).
    assert store.local_path("files/file_2/x.npy", cache) == path
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == ["x.npy"]  # no partial files left


def test_local_path_refreshes_a_stale_copy(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "x"
    source.write_bytes(b"new content")
    store.put_file("files/f/x", source)
    cache = DownloadCache(tmp_path / "cache", 10**9)
    path = store.local_path("files/f/x", cache)
    if store.remote:
        path.write_bytes(b"truncated")  # a copy of the wrong size is not reused
    assert store.local_path("files/f/x", cache).read_bytes() == b"new content"


def test_list_keys_and_delete_prefix_remove_only_that_prefix(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"data")
    keys = ["jobs/a/student.onnx", "jobs/a/work/distill.ckpt", "jobs/ab/student.onnx", "files/f/x"]
    for key in keys:
        store.put_file(key, source)
    assert store.list_keys("jobs/a/") == ["jobs/a/student.onnx", "jobs/a/work/distill.ckpt"]
    assert store.list_keys("jobs/") == sorted(keys[:3])

    store.delete_prefix("jobs/a/")
    assert not store.exists("jobs/a/student.onnx")
    assert not store.exists("jobs/a/work/distill.ckpt")
    assert store.list_keys("jobs/a/") == []
    assert store.exists("jobs/ab/student.onnx")
    assert store.exists("files/f/x")
    store.delete_prefix("jobs/a/")  # nothing left: no error

    with pytest.raises(ValueError, match="whole store"):
        store.delete_prefix("/")


@pytest.mark.parametrize("key", ["../outside", "jobs/../../outside", "/etc/passwd"])
def test_keys_escaping_the_store_are_refused(store: Store, tmp_path: Path, key: str) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"data")
    with pytest.raises(ValueError, match="key"):
        store.put_file(key, source)
    with pytest.raises(ValueError, match="key"):
        store.exists(key)
    with pytest.raises(ValueError, match="key"):
        store.local_path(key, DownloadCache(tmp_path / "cache", 10**9))
    assert not (tmp_path / "outside").exists()


def test_a_multipart_upload_round_trips(new_store: MakeStore, tmp_path: Path) -> None:
    # S3 parts are at least 5 MiB: 11 MiB in parts of 5 MiB is three parts.
    store = new_store(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    source = tmp_path / "big.bin"
    data = write(source, 11 * MIB)
    assert store.put_file("files/big/upload", source) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert store.size("files/big/upload") == len(data)
    assert hashlib.sha256(read(store, "files/big/upload")).digest() == hashlib.sha256(data).digest()
    copy = store.local_path("files/big/upload", DownloadCache(tmp_path / "cache", 10**9))
    assert copy.stat().st_size == len(data)
    if store.remote:
        s3: Any = store
        head = s3.client.head_object(Bucket=s3.bucket, Key=s3.prefix + "files/big/upload")
        assert head["ETag"].strip('"').endswith("-3")  # S3's mark of a 3-part upload


def test_s3_keys_live_under_the_prefix(s3_server: str, s3_bucket_url: str, tmp_path: Path) -> None:
    from app.store.s3 import S3Store

    store = S3Store(s3_bucket_url, endpoint_url=s3_server)
    source = tmp_path / "f"
    source.write_bytes(b"data")
    digest = store.put_file("jobs/j/report.json", source)[1]
    bucket = s3_bucket_url.removeprefix("s3://").split("/")[0]
    listing = s3_client(s3_server).list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listing["Contents"]] == ["some/prefix/jobs/j/report.json"]
    head = s3_client(s3_server).head_object(Bucket=bucket, Key="some/prefix/jobs/j/report.json")
    assert head["Metadata"] == {"sha256": digest}


def test_s3_presigned_url_downloads_without_credentials(
    s3_server: str, s3_bucket_url: str, tmp_path: Path
) -> None:
    from app.store.s3 import S3Store

    store = S3Store(s3_bucket_url, endpoint_url=s3_server)
    source = tmp_path / "f"
    source.write_bytes(b"student bytes")
    store.put_file("jobs/j/student.onnx", source)
    response = httpx.get(store.presigned_url("jobs/j/student.onnx", expires=600))
    assert response.status_code == 200
    assert response.content == b"student bytes"


def test_s3_missing_bucket_is_a_clear_error(
    s3_server: str, s3_bucket_url: str, tmp_path: Path
) -> None:
    from app.store.s3 import BucketMissingError, S3Store

    store = S3Store("s3://no-such-bucket-here/prefix", endpoint_url=s3_server)
    source = tmp_path / "f"
    source.write_bytes(b"data")
    with pytest.raises(BucketMissingError, match="'no-such-bucket-here' does not exist"):
        store.put_file("jobs/j/x", source)
    with pytest.raises(BucketMissingError, match="no-such-bucket-here"):
        store.list_keys("jobs/")


def test_make_store_chooses_by_url(s3_server: str, s3_bucket_url: str, tmp_path: Path) -> None:
    from app.store.s3 import S3Store

    s3 = make_store(s3_bucket_url, s3_server)
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == (
        s3_bucket_url.removeprefix("s3://").split("/")[0],
        "some/prefix/",
        s3_server,
    )
    assert s3.remote
    assert isinstance(make_store(str(tmp_path / "artifacts")), LocalStore)
    assert isinstance(make_store(f"file://{tmp_path}/artifacts"), LocalStore)
    with pytest.raises(ValueError, match="use a local folder or s3://bucket/prefix"):
        make_store("ftp://x")
    with pytest.raises(ValueError, match="names no bucket"):
        make_store("s3:///prefix")


def test_put_file_trusts_a_sha256_the_caller_already_computed(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.store.local
    import app.store.s3

    def no_rereading(_path: Path) -> str:
        raise AssertionError("the file was hashed again")

    monkeypatch.setattr(app.store.local, "sha256_of", no_rereading)
    monkeypatch.setattr(app.store.s3, "sha256_of", no_rereading)
    data = write(tmp_path / "a", 1000)
    known = hashlib.sha256(data).hexdigest()
    assert store.put_file("files/f/upload", tmp_path / "a", move=True, sha256=known) == (
        1000,
        known,
    )
    assert read(store, "files/f/upload") == data
