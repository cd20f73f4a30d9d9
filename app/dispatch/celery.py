"""Dispatch over Celery (DISTILLERY_BROKER_URL set): jobs and estimates are sent to the
workers by task name (app/dispatch/base.py), never by importing them.

This module is `app.dispatch.celery`; `celery` below is the library (imports are absolute).
"""

import uuid
from typing import Any

from app.dispatch.base import EstimateUnavailable, estimate_answer
from app.settings import Settings
from distillery.types.protocol import ESTIMATE_TASK, LABEL_SHARDS_TASK, RUN_JOB_TASK, job_queue

# Set in the broker by the first dispatcher that finds it missing: a broker that comes back
# without it has lost its data, queued messages included.
BROKER_MARKER_KEY = "distillery:broker-marker"


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        from celery import Celery

        assert settings.broker_url is not None
        self.settings = settings
        self.celery = Celery(
            "distillery-api", broker=settings.broker_url, backend=settings.result_backend
        )
        self.celery.conf.update(
            broker_connection_timeout=3,
            broker_connection_retry_on_startup=False,
            # A Redis that accepts connections but never answers must not hang a send or
            # /readyz.
            broker_transport_options={
                "visibility_timeout": settings.celery_visibility_timeout_seconds,
                "socket_connect_timeout": 3,
                "socket_timeout": 3,
            },
        )

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def send(self, job_id: str, device: str = "any") -> None:
        self.celery.send_task(
            RUN_JOB_TASK,
            args=[job_id],
            queue=job_queue(self.settings.celery_queue, device),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )

    def send_shard_tasks(self, job_id: str, device: str, count: int) -> None:
        """Ask `count` more workers of the job's queue to label shards of its soft labels (a
        job's worker sends these, worker/label_shards.py; a lost one costs only help)."""
        queue = job_queue(self.settings.celery_queue, device)
        for _ in range(count):
            self.celery.send_task(LABEL_SHARDS_TASK, args=[job_id], queue=queue)

    def estimate(self, spec: dict[str, Any], tenant: str) -> dict[str, Any]:
        from celery.exceptions import TimeoutError as CeleryTimeout

        timeout = self.settings.estimate_timeout_seconds
        pending = self.celery.send_task(
            ESTIMATE_TASK,
            args=[spec, tenant],
            queue=self.settings.celery_estimate_queue,
            # Not worth running once nobody waits for it.
            expires=timeout,
        )
        try:
            answer = pending.get(timeout=timeout)
        except CeleryTimeout:
            pending.forget()
            raise EstimateUnavailable(
                f"no worker on queue {self.settings.celery_estimate_queue!r} answered within "
                f"{timeout:.0f} s"
            ) from None
        return estimate_answer(answer)

    def ready(self) -> bool:
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:
            return False

    def broker_restarted(self) -> bool:
        """Only a Redis broker can lose its queue this way (RabbitMQ keeps durable queues on
        disk). Of several API processes, the one that sets the new marker answers True."""
        if not self.settings.broker_url or not self.settings.broker_url.startswith("redis"):
            return False
        import redis

        client = redis.Redis.from_url(
            self.settings.broker_url, socket_timeout=3, socket_connect_timeout=3
        )
        try:
            return bool(client.set(BROKER_MARKER_KEY, uuid.uuid4().hex, nx=True))
        finally:
            client.close()
