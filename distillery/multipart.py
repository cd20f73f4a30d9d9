"""A file upload as a streamed multipart/form-data body of known length: the form fields first
(the server checks the purpose against the file name before storing anything), then the file,
read a chunk at a time, with progress reported as each chunk is handed to the connection."""

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

import anyio.to_thread

CHUNK_BYTES = 256 * 1024
FILE_FIELD = "file"

Progress = Callable[[int, int], None]
"""progress(sent_bytes, total_bytes): the file's bytes handed to the connection so far."""


def _quoted(value: str) -> str:
    # What browsers do (WHATWG): percent-encode the characters that would end the quoted string.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartUpload:
    """The body of POST /v1/files for one file and its form fields."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fields: Mapping[str, str | int | float],
        filename: str | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.path = Path(path)
        self.filename = filename or self.path.name
        self.file_bytes = self.path.stat().st_size
        self.chunk_bytes = chunk_bytes
        self.boundary = secrets.token_hex(16)
        parts = [
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"'
            f"\r\n\r\n{value}\r\n".encode()
            for name, value in fields.items()
        ]
        parts.append(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{FILE_FIELD}"; '
            f'filename="{_quoted(self.filename)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        self.head = b"".join(parts)
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def length(self) -> int:
        return len(self.head) + self.file_bytes + len(self.tail)

    def headers(self) -> dict[str, str]:
        # A declared length lets the server refuse an oversized upload before it is sent.
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.length),
        }

    def _open(self) -> IO[bytes]:
        return self.path.open("rb")

    def _checked(self, chunk: bytes, sent: int) -> int:
        sent += len(chunk)
        if sent > self.file_bytes:
            raise OSError(f"{self.path} grew while it was being uploaded")
        return sent

    def _short(self, sent: int) -> OSError:
        return OSError(
            f"{self.path} shrank while it was being uploaded ({sent} of {self.file_bytes})"
        )

    def iter_body(self, progress: Progress | None = None) -> Iterator[bytes]:
        yield self.head
        sent = 0
        if progress:
            progress(0, self.file_bytes)
        with self._open() as file:
            while chunk := file.read(self.chunk_bytes):
                yield chunk
                sent = self._checked(chunk, sent)
                if progress:
                    progress(sent, self.file_bytes)
        if sent != self.file_bytes:
            raise self._short(sent)
        yield self.tail

    async def aiter_body(self, progress: Progress | None = None) -> AsyncIterator[bytes]:
        """iter_body for an async client: the file is read in a worker thread."""
        yield self.head
        sent = 0
        if progress:
            progress(0, self.file_bytes)
        file = await anyio.to_thread.run_sync(self._open)
        try:
            while chunk := await anyio.to_thread.run_sync(file.read, self.chunk_bytes):
                yield chunk
                sent = self._checked(chunk, sent)
                if progress:
                    progress(sent, self.file_bytes)
        finally:
            file.close()
        if sent != self.file_bytes:
            raise self._short(sent)
        yield self.tail
