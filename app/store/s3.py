"""The S3 store: `DISTILLERY_ARTIFACT_URL=s3://bucket/prefix`, on AWS or any S3-compatible server.

The endpoint is `DISTILLERY_S3_ENDPOINT_URL` when set (MinIO, ...), else boto3's own resolution
(`AWS_ENDPOINT_URL`, the AWS config file, AWS itself). Credentials come the usual AWS way:
environment, config files, instance or pod roles. The bucket must exist: the store never
creates one, and says so clearly when it is missing.
"""

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from app.store.base import CHUNK_BYTES, sha256_of
from app.store.cache import DownloadCache

MIB = 1024 * 1024
# Objects up to this size go up in one PUT; larger ones in parallel parts of MULTIPART_CHUNK.
MULTIPART_THRESHOLD = 64 * MIB
MULTIPART_CHUNK = 16 * MIB
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes


class BucketMissingError(RuntimeError):
    """The bucket named in DISTILLERY_ARTIFACT_URL does not exist at the endpoint."""


class S3Store:
    """Keys live under `s3://bucket/prefix/`; workers copy what they read to a local cache."""

    remote = True

    def __init__(
        self,
        url: str,
        endpoint_url: str | None = None,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunksize: int = MULTIPART_CHUNK,
        client: Any = None,
    ) -> None:
        if not url.startswith("s3://"):
            raise ValueError(f"store {url!r} is not an s3://bucket/prefix URL")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"store {url!r} names no bucket: use s3://bucket/prefix")
        self.url = url
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        if client is None:
            # Path-style requests for an explicit endpoint: MinIO and most S3-compatible servers
            # do not serve bucket-named host names.
            config = Config(
                s3={"addressing_style": "path"} if self.endpoint_url else {},
                retries={"mode": "standard", "max_attempts": 5},
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, config=config
            )
        self.client = client
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
        )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r}, endpoint_url={self.endpoint_url!r})"

    def staging_dir(self) -> Path:
        path = Path(tempfile.gettempdir()) / "distillery-staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def put_file(
        self, key: str, source: Path, *, move: bool = False, sha256: str | None = None
    ) -> tuple[int, str]:
        size = source.stat().st_size
        digest = sha256 or sha256_of(source)
        try:
            # A single PUT or a completed multipart upload: S3 shows the object whole or not at
            # all, never a part of it.
            self.client.upload_file(
                str(source),
                self.bucket,
                self._key(key),
                ExtraArgs={"Metadata": {"sha256": digest}},
                Config=self.transfer,
            )
        except (ClientError, S3UploadFailedError):
            self._check_bucket()
            raise
        if move:
            source.unlink(missing_ok=True)
        return size, digest

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"{self._describe(key)} does not exist")
        return int(head["ContentLength"])

    def open_chunks(self, key: str) -> Iterator[bytes]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{self._describe(key)} does not exist") from exc
            self._check_bucket()
            raise
        body = response["Body"]
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()

    def local_path(self, key: str, cache: DownloadCache) -> Path:
        name = self._key(key)
        target = (cache.root / name).resolve()
        if not target.is_relative_to(cache.root.resolve()):  # _key refuses '..'; belt and braces
            raise ValueError(f"store key {key!r} leaves the cache")

        def download(f: BinaryIO) -> None:
            self.client.download_fileobj(self.bucket, name, f, Config=self.transfer)

        # Written to a partial file of its own and renamed into place: concurrent readers of
        # one key each see a whole copy, never half of one.
        return cache.get(name, self.size(key), download)

    def delete_prefix(self, prefix: str) -> None:
        folder = prefix.strip("/")
        if not folder:
            raise ValueError("refusing to delete the whole store")
        # The key itself (as LocalStore removes a file) and everything under it as a folder.
        keys = [self._key(k) for k in self.list_keys(folder + "/")]
        if self.exists(folder):
            keys.append(self._key(folder))
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise RuntimeError(
                    f"could not delete {len(response['Errors'])} objects under "
                    f"{self._describe(folder)}: {first.get('Key')}: {first.get('Message')}"
                )

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under the folder `prefix` (store keys, without the store's own prefix),
        sorted."""
        return [key for key, _ in self.list_objects(prefix)]

    def list_objects(self, prefix: str) -> list[tuple[str, int]]:
        """(key, bytes) of every key under the folder `prefix`, sorted by key."""
        folder = prefix.strip("/")
        full = self._key(folder) + "/" if folder else self.prefix
        objects: list[tuple[str, int]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                objects.extend(
                    (item["Key"][len(self.prefix) :], int(item["Size"]))
                    for item in page.get("Contents", [])
                )
        except ClientError:
            self._check_bucket()
            raise
        return sorted(objects)

    def presigned_url(self, key: str, expires: int = 3600) -> str:
        """A URL that downloads the key without credentials until it expires (seconds)."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=expires,
            )
        )

    def _key(self, key: str) -> str:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"store key {key!r} is not a plain relative key")
        return self.prefix + key

    def _describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            self._check_bucket()
            raise
        return head

    def _check_bucket(self) -> None:
        """After a failed call: raise a clear error when the cause is a missing bucket."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                where = self.endpoint_url or "the default AWS endpoint"
                raise BucketMissingError(
                    f"S3 bucket {self.bucket!r} does not exist at {where}: create it "
                    f"(DISTILLERY_ARTIFACT_URL={self.url})"
                ) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
