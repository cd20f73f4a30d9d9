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

from app.db import session_scope
from app.files import service
from app.settings import Settings

log = logging.getLogger(__name__)

CRASHED = "the check ran out of memory or time (limits: {memory} bytes of memory, {seconds:g} s)"


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


class FileChecker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
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

    def run(self, file_id: str) -> None:
        """Check one claimed file in a child process; mark it refused if the child dies."""
        settings = self.settings
        child = subprocess.Popen(
            [sys.executable, "-m", "app.files.check", file_id],
            env=child_env(settings),
            start_new_session=True,
        )
        deadline = time.monotonic() + settings.file_check_timeout_seconds
        renew_every = max(0.05, settings.lease_seconds / 3)
        code: int | None = None
        while code is None:
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                child.kill()
                child.wait()
                break
            try:
                code = child.wait(timeout=min(renew_every, left))
            except subprocess.TimeoutExpired:
                with session_scope(settings.database_url) as session:
                    service.renew_lease(session, file_id, settings.lease_seconds)
        with session_scope(settings.database_url) as session:
            if code is None and self._stop.is_set():
                # Stopping: leave it to the next checker rather than blame the file.
                service.release_lease(session, file_id)
            elif code != 0:
                log.warning("check of %s ended with code %s", file_id, code)
                service.finish_error(
                    session,
                    file_id,
                    CRASHED.format(
                        memory=settings.file_check_memory_bytes,
                        seconds=settings.file_check_timeout_seconds,
                    ),
                )
