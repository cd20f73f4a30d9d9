"""The FileChecker: a thread in the API process that checks uploads one at a time, each in a
`python -m app.files.check <file_id>` child under a memory limit and a timeout.

It claims a file with a conditional UPDATE (status processing, lease unset or expired) and
renews the lease while the child runs, so when an API process dies its files are claimed again
by any API process once the lease expires: an accepted upload is never left unchecked.
"""

import logging
import os
import subprocess
import sys
import threading
import time
from typing import IO

from app.db import session_scope
from app.files import service
from app.settings import Settings
from app.store import make_store
from app.store.base import Store
from distillery.types.protocol import EXIT_OUT_OF_MEMORY

log = logging.getLogger(__name__)

CRASHED = "the check ran out of memory or time (limits: {memory} bytes of memory, {seconds:g} s)"
FAILED = "the check failed: {cause}"
# A check that exits with an error of its own (not the file's fault: the database or the store
# away for a moment) runs again, up to this many times in all.
MAX_ATTEMPTS = 3
# The most bytes of a check's stderr kept (its last ones) to explain a failure.
STDERR_TAIL_BYTES = 8192


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a check: this process's, with every setting spelled out (the API may
    run with settings that are not in its environment)."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        key = f"DISTILLERY_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    # One thread: numeric libraries reserve memory per thread, which the memory limit counts.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


class _Tail:
    """Reads a child's stderr in a thread of its own, keeping only its last bytes."""

    def __init__(self, stream: IO[bytes], limit: int = STDERR_TAIL_BYTES) -> None:
        self.limit = limit
        self.data = b""
        self._stream = stream
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with self._stream:
            while chunk := self._stream.read1(65536):  # type: ignore[attr-defined]
                self.data = (self.data + chunk)[-self.limit :]

    def text(self) -> str:
        self._thread.join(timeout=5)
        return self.data.decode("utf-8", "replace")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def ran_out_of_memory(code: int, stderr: str) -> bool:
    """Killed by a signal (the kernel, the time limit), or a MemoryError in the child."""
    return code < 0 or code == EXIT_OUT_OF_MEMORY or "MemoryError" in last_line(stderr)


class FileChecker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._store: Store | None = None
        self._thread = threading.Thread(
            target=self._loop, name="distillery-file-checker", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with session_scope(self.settings.database_url) as session:
                    file_id = service.claim_next(session, self.settings.lease_seconds)
            except Exception:
                log.exception("file checker could not read the queue")
                file_id = None
            if file_id is None:
                self._wake.wait(self.settings.runner_poll_seconds)
                self._wake.clear()
                continue
            try:
                self.run(file_id)
            except Exception:
                log.exception("checking %s failed", file_id)

    def store(self) -> Store:
        """The store a refused file's data is removed from (made on first use)."""
        if self._store is None:
            self._store = make_store(self.settings.artifact_url, self.settings.s3_endpoint_url)
        return self._store

    def command(self, file_id: str) -> list[str]:
        return [sys.executable, "-m", "app.files.check", file_id]

    def run(self, file_id: str) -> None:
        """Check one claimed file in a child process; mark it refused (its data removed) if the
        child runs out of memory or time, and record the child's own error if it fails otherwise
        (after MAX_ATTEMPTS tries: such a failure may be a passing one)."""
        settings = self.settings
        for attempt in range(1, MAX_ATTEMPTS + 1):
            code, stderr = self._run_child(file_id)
            if code == 0:
                return
            with session_scope(settings.database_url) as session:
                if code is None and self._stop.is_set():
                    # Stopping: leave it to the next checker rather than blame the file.
                    service.release_lease(session, file_id)
                    return
                if code is None or ran_out_of_memory(code, stderr):
                    log.warning("check of %s ran out of memory or time (code %s)", file_id, code)
                    service.refuse(
                        session,
                        self.store(),
                        file_id,
                        CRASHED.format(
                            memory=settings.file_check_memory_bytes,
                            seconds=settings.file_check_timeout_seconds,
                        ),
                    )
                    return
                log.warning(
                    "check of %s (attempt %d of %d) ended with code %s: %s",
                    file_id,
                    attempt,
                    MAX_ATTEMPTS,
                    code,
                    stderr[-2000:],
                )
                if attempt == MAX_ATTEMPTS or self._stop.is_set():
                    service.refuse(
                        session, self.store(), file_id, FAILED.format(cause=last_line(stderr))
                    )
                    return
                service.renew_lease(session, file_id, settings.lease_seconds)

    def _run_child(self, file_id: str) -> tuple[int | None, str]:
        """Run the check; (exit code or None when killed for time or a stop, last stderr)."""
        settings = self.settings
        child = subprocess.Popen(
            self.command(file_id),
            env=child_env(settings),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._child = child
        assert child.stderr is not None
        tail = _Tail(child.stderr)
        deadline = time.monotonic() + settings.file_check_timeout_seconds
        renew_every = max(0.05, settings.lease_seconds / 3)
        code: int | None = None
        try:
            while code is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    break
                try:
                    code = child.wait(timeout=min(renew_every, left))
                except subprocess.TimeoutExpired:
                    with session_scope(settings.database_url) as session:
                        service.renew_lease(session, file_id, settings.lease_seconds)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        return code, tail.text()
