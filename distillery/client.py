"""The synchronous client: `Client().jobs`, `.files`, `.catalog` on httpx.Client. Requests
and parsing live in distillery.calls (shared with AsyncClient); this module only sends."""

import builtins
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from distillery import calls, config, downloads, types
from distillery.errors import DistilleryError, error_from_response, transport_errors
from distillery.event_stream import EventFollower
from distillery.multipart import MultipartUpload, Progress
from distillery.waiting import Deadline

T = TypeVar("T")


class Client:
    """Client(base_url=None, api_key=None): the URL defaults to DISTILLERY_URL, else
    http://127.0.0.1:8000; the key to DISTILLERY_API_KEY (sent as a Bearer key)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = config.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = config.resolve(base_url, api_key, timeout)
        self.base_url, self._timeout = settings.base_url, settings.timeout
        self._http = httpx.Client(
            base_url=settings.base_url, headers=settings.headers, transport=transport
        )
        self.jobs = Jobs(self)
        self.files = Files(self)
        self.catalog = Catalog(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, call: calls.Call[T], content: Any = None) -> T:
        with transport_errors():
            response = self._http.request(**call.request(self._timeout, content))
        return call.result(response)

    @contextmanager
    def stream(self, call: calls.Call[Any]) -> Iterator[httpx.Response]:
        """The response of `call`, its body not read yet (an error is raised, typed)."""
        with transport_errors(), self._http.stream(**call.request(self._timeout)) as response:
            if response.is_error:
                response.read()
                raise error_from_response(response)
            yield response

    def pages(self, call: calls.Call[calls.Page[T]] | None) -> Iterator[T]:
        """Every item of a list, a page at a time."""
        while call is not None:
            page = self.send(call)
            yield from page.data
            call = page.next


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self, spec: dict[str, Any] | types.JobCreate, *, idempotency_key: str | None = None
    ) -> types.Job:
        """Submit a job. The same idempotency_key and body answer the first job again."""
        return self._client.send(calls.create_job(spec, idempotency_key))

    def estimate(self, spec: dict[str, Any] | types.JobCreate) -> types.Estimate:
        """What the spec would cost (work, FLOPs, wall time per device kind), from a short dry
        run on a worker; creates no job."""
        return self._client.send(calls.estimate_job(spec))

    def retrieve(self, job_id: str) -> types.Job:
        return self._client.send(calls.retrieve_job(job_id))

    def list(
        self,
        *,
        status: str | None = None,
        limit: int = calls.DEFAULT_PAGE_SIZE,
        include: Iterable[str] = (),
    ) -> Iterator[types.JobListItem]:
        """Every job, newest first, fetched `limit` a page; include: "spec", "result", "cost"."""
        return self._client.pages(calls.list_jobs(status, limit, include))

    def cancel(self, job_id: str) -> types.Job:
        return self._client.send(calls.job_action(job_id, "cancel"))

    def pause(self, job_id: str) -> types.Job:
        return self._client.send(calls.job_action(job_id, "pause"))

    def resume(self, job_id: str) -> types.Job:
        return self._client.send(calls.job_action(job_id, "resume"))

    def delete(self, job_id: str) -> None:
        """Delete a finished job: its records, artifacts and work files."""
        self._client.send(calls.delete_job(job_id))

    def events(
        self, job_id: str, *, after: int | None = None, follow: bool = True
    ) -> Iterator[types.JobEvent]:
        """The job's events after the event id `after`. follow: new ones as they come, until
        the job has finished (over server-sent events, reconnecting where a stream broke off);
        else only those there are now."""
        if not follow:
            yield from self._client.pages(calls.list_events(job_id, after))
            return
        follower = EventFollower(job_id, after)
        while not follower.done:
            try:
                with self._client.stream(follower.call()) as response:
                    for line in response.iter_lines():
                        event = follower.feed(line)
                        if event is not None:
                            yield event
            except DistilleryError as error:
                pause = follower.failed(error)
            else:
                pause = follower.stream_closed()
            time.sleep(pause)

    def metrics(self, job_id: str) -> builtins.list[types.MetricRow]:
        return self._client.send(calls.job_metrics(job_id))

    def artifacts(self, job_id: str) -> builtins.list[types.Artifact]:
        return self._client.send(calls.job_artifacts(job_id))

    def download(
        self,
        job_id: str,
        name: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        sha256: str | None = None,
    ) -> Path:
        """Stream an artifact to `dest` (a folder, a file path, or None: the current folder)
        and verify its sha256 (the server's ETag, and `sha256` if given); ChecksumMismatch if
        it differs, and then no file is left. Returns the file's path."""
        path = downloads.destination(dest, name)
        call = calls.download_artifact(job_id, name)
        with (
            self._client.stream(call) as response,
            downloads.ArtifactFile(path, response.headers, sha256) as file,
        ):
            for chunk in response.iter_bytes(downloads.CHUNK_BYTES):
                file.write(chunk)
        return path

    def wait(
        self, job_id: str, *, poll_interval: float = 1.0, timeout: float | None = None
    ) -> types.Job:
        """Poll until the job has finished (succeeded, failed or cancelled); TimeoutError
        after `timeout` seconds."""
        deadline = Deadline(f"job {job_id}", timeout)
        while (job := self.retrieve(job_id)).status not in calls.FINISHED:
            time.sleep(deadline.sleep_for(poll_interval))
        return job


class Files:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(
        self,
        path: str | os.PathLike[str],
        purpose: str,
        *,
        progress: Progress | None = None,
        filename: str | None = None,
        **options: str | int | float,
    ) -> types.File:
        """Upload a dataset, teacher or logits file (purpose), streamed from disk;
        options: the format's form fields (label_column, max_length, ...); progress(sent,
        total) as the file's bytes go out. The answer's status is `processing`: see wait()."""
        upload = MultipartUpload(path, {"purpose": purpose, **options}, filename)
        return self._client.send(calls.upload_file(upload), upload.iter_body(progress))

    def retrieve(self, file_id: str) -> types.File:
        return self._client.send(calls.retrieve_file(file_id))

    def list(
        self, *, purpose: str | None = None, limit: int = calls.DEFAULT_PAGE_SIZE
    ) -> Iterator[types.File]:
        """Every file, newest first, fetched `limit` a page."""
        return self._client.pages(calls.list_files(purpose, limit))

    def delete(self, file_id: str) -> types.FileDeleted:
        return self._client.send(calls.delete_file(file_id))

    def wait(
        self, file_id: str, *, poll_interval: float = 0.5, timeout: float | None = None
    ) -> types.File:
        """Poll until the file's check is done (status `ready` or `error`)."""
        deadline = Deadline(f"file {file_id}", timeout)
        while (file := self.retrieve(file_id)).status == calls.FILE_PROCESSING:
            time.sleep(deadline.sleep_for(poll_interval))
        return file


class Catalog:
    """What a job can name, with each entry's parameters."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def models(self) -> list[types.CatalogEntry]:
        return self._client.send(calls.catalog("models"))

    def datasets(self) -> list[types.CatalogEntry]:
        return self._client.send(calls.catalog("datasets"))

    def methods(self) -> list[types.CatalogEntry]:
        return self._client.send(calls.catalog("methods"))

    def kind(self, kind: str) -> list[types.CatalogEntry]:
        """Any kind of the catalog: models, datasets, methods, teacher_sources, schedules,
        augmentations, tasks."""
        return self._client.send(calls.catalog(kind))
