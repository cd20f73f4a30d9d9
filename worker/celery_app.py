"""Celery configured from app.settings: one worker process per GPU, one job per child process.

celery -A worker.celery_app worker -Q gpu -c 1
"""

from celery import Celery

from app.settings import get_settings

settings = get_settings()

app = Celery("distillery", broker=settings.broker_url, include=["worker.tasks"])
app.conf.update(
    # A job is acknowledged only after it ran: a worker lost mid-job gets it redelivered
    # (the claim makes a duplicate delivery a no-op).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # Each job runs in a fresh child: CUDA state never leaks from one job into the next,
    # and the parent process never imports torch.
    worker_max_tasks_per_child=1,
    task_default_queue=settings.celery_queue,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    # Longer than any training slice, or Redis would hand a running job to a second worker.
    broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_seconds},
    worker_hijack_root_logger=False,
)
