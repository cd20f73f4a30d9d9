"""The embedded runner (no DISTILLERY_BROKER_URL): a thread in the API process that runs
queued jobs one at a time, each in a fresh `python -m worker.run` subprocess (so the API never
imports torch).

One such process is always started ahead, as a spare (`--next`): it loads the pipeline while
the runner is idle and waits for a job id on its stdin, so a job starts within a moment of
being submitted and the next one does not wait for the last one's process to start up."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from typing import Any

from app import fleet, jobs
from app.db import session_scope
from app.dispatch.base import EstimateUnavailable, estimate_answer
from app.fleet import Announcer
from app.models import JobStatus
from app.settings import Settings
from distillery.types.protocol import EXIT_DATABASE_UNREACHABLE, PARENT_PID_ENV

log = logging.getLogger(__name__)


class EmbeddedRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._spare: subprocess.Popen[bytes] | None = None
        self._announcer: Announcer | None = None
        self._thread = threading.Thread(target=self._loop, name="distillery-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()
        # The runner is this machine's one worker: it says what the machine has, so jobs
        # asking for a device kind it lacks are refused at POST (app/fleet.py).
        name = f"embedded@{socket.gethostname()}:{os.getpid()}"
        self._announcer = Announcer(self.settings, name, fleet.detect(self.settings, []))
        self._announcer.start()

    def stop(self) -> None:
        if self._announcer is not None:
            self._announcer.stop()
        self._stop.set()
        self._wake.set()
        self._drop_spare()
        child = self._child
        if child is not None and child.poll() is None:
            # The runner thread then gives up the job's lease, so the next start requeues the
            # job at once and resumes it from its last checkpoint.
            child.terminate()
        self._thread.join(timeout=10)

    def send(self, job_id: str, device: str = "any") -> None:
        # One machine: POST checked it announced the device kind the job asks for.
        self._wake.set()

    def ready(self) -> bool:
        return self._thread.is_alive()

    def broker_restarted(self) -> bool:
        return False  # the runner reads its queue from the database: nothing to lose

    def estimate(self, spec: dict[str, Any], tenant: str) -> dict[str, Any]:
        """In a `python -m worker.estimate` process of its own (beside a running job, which
        then shares this machine with it: the measured rates come out slower)."""
        timeout = self.settings.estimate_timeout_seconds
        try:
            done = subprocess.run(
                [sys.executable, "-m", "worker.estimate"],
                input=json.dumps({"spec": spec, "tenant": tenant}).encode(),
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise EstimateUnavailable(f"the estimate took over {timeout:.0f} s") from None
        if done.returncode != 0:
            log.error("estimate process failed: %s", done.stderr.decode(errors="replace")[-4000:])
            raise RuntimeError(f"the estimate process exited with code {done.returncode}")
        return estimate_answer(json.loads(done.stdout))

    def _loop(self) -> None:
        try:
            try:
                self._spare = self._start_spare()
            except Exception:  # the first job starts one instead
                log.exception("runner could not start a spare worker process")
            self._serve()
        finally:
            self._drop_spare()

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()
            spare.wait()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                with session_scope(self.settings.database_url) as session:
                    # Skips the jobs of tenants at their running limit (they wait, others run).
                    job_id = jobs.oldest_queued_job_id(
                        session, max_running=self.settings.tenant_max_running_jobs
                    )
            except Exception:
                log.exception("runner could not read the queue")
                job_id = None
            if job_id is None:
                self._wake.wait(self.settings.runner_poll_seconds)
                self._wake.clear()
                continue
            try:
                started = self._run(job_id)
            except Exception:
                log.exception("runner could not run %s", job_id)
                started = False
            if not started:
                # The worker found the tenant at its limit after all (a job of it started
                # meanwhile, elsewhere): wait for a change instead of retrying it at once.
                self._wake.wait(self.settings.runner_poll_seconds)
                self._wake.clear()

    def _start_spare(self) -> subprocess.Popen[bytes]:
        # The child dies with this process, even a SIGKILLed one (worker.run asks the kernel).
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
        argv = [sys.executable, "-m", "worker.run", "--next"]
        return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE)

    def _hand_over(self, job_id: str) -> subprocess.Popen[bytes]:
        """The spare, told to run the job (a new process if the spare is gone); the next spare
        starts loading at once."""
        child = self._spare
        self._spare = None
        for _ in range(2):
            if child is None or child.poll() is not None:
                child = self._start_spare()
            assert child.stdin is not None
            try:
                child.stdin.write(f"{job_id}\n".encode())
                child.stdin.close()
                break
            except BrokenPipeError:  # it died meanwhile: once more with a new one
                child.wait()
                child = None
        assert child is not None
        if not self._stop.is_set():
            self._spare = self._start_spare()
        return child

    def _run(self, job_id: str) -> bool:
        """Run the job in a child process; False when the child left it queued."""
        log.info("running %s", job_id)
        self._child = self._hand_over(job_id)
        code = self._child.wait()
        owner = jobs.lease_owner(self._child.pid)
        self._child = None
        if self._stop.is_set():
            if code != 0:
                with session_scope(self.settings.database_url) as session:
                    jobs.release_lease(session, job_id, owner)
            return True
        if code == EXIT_DATABASE_UNREACHABLE:
            return False  # still queued: wait, then try again
        with session_scope(self.settings.database_url) as session:
            job = jobs.unscoped_job(session, job_id)
            if code == 0:
                return job.status != JobStatus.QUEUED
            if job.status == JobStatus.QUEUED:
                # It died before it could claim the job: retrying would loop forever.
                jobs.fail_unclaimed(
                    session,
                    job_id,
                    {"code": "worker_crashed", "message": f"worker exited with code {code}"},
                )
            else:
                jobs.release_lease(session, job_id, owner)
        return True
