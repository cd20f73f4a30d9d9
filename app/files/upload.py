"""Receive a multipart/form-data upload as a stream: the file part goes chunk by chunk to a
staging file (sha256 and size computed on the way, a byte limit enforced), the other parts are
small form fields. Nothing holds the whole upload in memory.

The parsing, hashing and disk writes run in a worker thread, one batch of received chunks (at
most BATCH_BYTES) at a time, so a large upload never stalls the event loop."""

import hashlib
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from app.api_error import ApiError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16
MAX_FILENAME_CHARS = 255
# The most bytes of one part header's name or value (python-multipart before 0.0.13 has no cap).
MAX_HEADER_BYTES = 16 * 1024
# Received chunks are handed to the parser thread in batches of at most this many bytes.
BATCH_BYTES = 1024 * 1024


def sanitize_filename(raw: str) -> str:
    """The basename only, printable and without path or shell-special characters, <= 255."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^\w.\- ]", "_", name).strip(" .") or "upload"
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        name = (stem if dot else name)[: MAX_FILENAME_CHARS - len(ext) - 1] + (
            "." + ext if ext else ""
        )
    return name


@dataclass
class Upload:
    """What the request held: the file (staged), its name, and the form fields."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    bytes: int = 0
    sha256: str = ""

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class UploadDropped(Exception):
    """The client closed the connection before the whole body arrived (an ordinary event: its
    partial file is already removed)."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the client closed the connection after {received} bytes of the file")
        self.received = received


class _Receiver:
    def __init__(
        self,
        staging: Path,
        max_bytes: int,
        quota_left: int,
        quota_message: str,
        on_filename: Callable[[str, dict[str, str]], None],
    ) -> None:
        self.upload = Upload()
        self.staging = staging
        self.max_bytes = max_bytes
        self.quota_left = quota_left
        self.quota_message = quota_message
        self.on_filename = on_filename
        self.error: ApiError | None = None
        self._digest = hashlib.sha256()
        self._file: IO[bytes] | None = None
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._part: str | None = None
        self._value = bytearray()
        self._is_file = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_field = self._header_value = b""
        self._value = bytearray()
        self._part = None
        self._is_file = False

    def _header_too_long(self, size: int) -> bool:
        if size <= MAX_HEADER_BYTES:
            return False
        self._fail(
            ApiError(
                400,
                "bad_request",
                f"malformed multipart body: a part header is longer than {MAX_HEADER_BYTES} bytes",
            )
        )
        return True

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        if self.error is None and not self._header_too_long(len(self._header_field) + end - start):
            self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self.error is None and not self._header_too_long(len(self._header_value) + end - start):
            self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self.error is not None:
            return
        self._headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = self._header_value = b""

    def _fail(self, error: ApiError) -> None:
        if self.error is None:
            self.error = error

    def _headers_finished(self) -> None:
        if self.error is not None:
            return
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._part = name
        if name == FILE_FIELD:
            if b"filename" not in options:
                self._fail(ApiError(422, "invalid_request", "file: not a file upload", "file"))
                return
            if self.upload.path is not None:
                self._fail(ApiError(422, "invalid_request", "file: given more than once", "file"))
                return
            filename = sanitize_filename(options[b"filename"].decode("utf-8", "replace"))
            self.upload.filename = filename
            try:
                self.on_filename(filename, self.upload.fields)
            except ApiError as exc:
                self._fail(exc)
                return
            fd, path = tempfile.mkstemp(dir=self.staging, prefix="upload-", suffix=".part")
            self.upload.path = Path(path)
            self._file = os.fdopen(fd, "wb")
            self._is_file = True
        elif len(self.upload.fields) >= MAX_FIELDS:
            self._fail(ApiError(422, "invalid_request", "too many form fields", name or None))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        chunk = data[start:end]
        if self._is_file and self._file is not None:
            self.upload.bytes += len(chunk)
            if self.upload.bytes > self.max_bytes:
                self._fail(
                    ApiError(
                        413,
                        "payload_too_large",
                        f"the file exceeds the upload limit of {self.max_bytes} bytes",
                        "file",
                    )
                )
                return
            if self.upload.bytes > self.quota_left:
                self._fail(ApiError(413, "payload_too_large", self.quota_message, "file"))
                return
            self._digest.update(chunk)
            self._file.write(chunk)
        else:
            self._value += chunk
            if len(self._value) > MAX_FIELD_BYTES:
                self._fail(
                    ApiError(
                        422,
                        "invalid_request",
                        f"{self._part}: form field longer than {MAX_FIELD_BYTES} bytes",
                        self._part,
                    )
                )

    def _part_end(self) -> None:
        if self.error is not None:
            return
        if self._is_file:
            if self._file is not None:
                self._file.close()
                self._file = None
        elif self._part:
            if self._part in self.upload.fields:
                self._fail(
                    ApiError(422, "invalid_request", f"{self._part}: given twice", self._part)
                )
                return
            try:
                self.upload.fields[self._part] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(ApiError(422, "invalid_request", f"{self._part}: not UTF-8", self._part))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.upload.sha256 = self._digest.hexdigest()


async def receive_upload(
    content_type: str,
    stream: AsyncIterator[bytes],
    *,
    staging: Path,
    max_bytes: int,
    quota_left: int,
    quota_message: str,
    on_filename: Callable[[str, dict[str, str]], None],
) -> Upload:
    """Parse the request body; raises ApiError (and removes the partial file) on any problem,
    UploadDropped when the client goes away mid-body.

    `on_filename(filename, fields so far)` may refuse the file (raise ApiError) as soon as its
    name is known, before any byte of it is stored."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            "unsupported_media_type",
            "upload a file as multipart/form-data (fields: file, purpose)",
        )
    receiver = _Receiver(staging, max_bytes, quota_left, quota_message, on_filename)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    except (FormParserError, ValueError) as exc:
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None

    def feed(chunks: list[bytes], final: bool) -> None:
        """In a worker thread: parse a batch (the callbacks hash and write the file part)."""
        try:
            for chunk in chunks:
                parser.write(chunk)
                if receiver.error is not None:
                    return
            if final:
                parser.finalize()
                receiver.close()
        except (FormParserError, ValueError) as exc:
            raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None

    try:
        batch: list[bytes] = []
        batched = 0
        async for chunk in stream:
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BATCH_BYTES:
                await anyio.to_thread.run_sync(feed, batch, False)
                batch, batched = [], 0
                if receiver.error is not None:
                    raise receiver.error
        await anyio.to_thread.run_sync(feed, batch, True)
        if receiver.error is not None:
            raise receiver.error
    except BaseException as exc:
        receiver.close()
        receiver.upload.discard()
        if isinstance(exc, ClientDisconnect):
            raise UploadDropped(receiver.upload.bytes) from None
        raise
    return receiver.upload


# An upload still arriving after this long is not coming back: its staging file goes.
STALE_STAGING_SECONDS = 24 * 3600


def sweep_staging(staging: Path, older_than_seconds: float = STALE_STAGING_SECONDS) -> int:
    """Remove upload staging files an API process left behind when it was killed mid-upload
    (a live upload's file is younger: it is written to as the bytes arrive). Returns how many."""
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in staging.glob("upload-*.part"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed
