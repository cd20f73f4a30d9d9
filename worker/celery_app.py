"""Celery configured from app.settings: one worker process per GPU, one job per child process.

celery -A worker.celery_app worker -Q gpu -c 1
celery -A worker.celery_app worker -Q estimate -c 1     (estimates: POST /v1/jobs/estimate)
"""

from dataclasses import replace
from typing import Any

from celery import Celery, signals

from app import fleet
from app.fleet import Announcer
from app.logs import bind_job, configure_logging
from app.settings import get_settings
from distillery.types.protocol import RUN_JOB_TASK, job_queue

settings = get_settings()
# Now, not only when Celery sets up logging: warnings Celery gives before that come out in the
# same format.
configure_logging(settings)

app = Celery(
    "distillery",
    broker=settings.broker_url,
    # Only estimates keep a result (the API waits for it); jobs report through the database.
    backend=settings.result_backend,
    include=["worker.tasks"],
)
app.conf.update(
    # A job is acknowledged only after it ran: a worker lost mid-job gets it redelivered
    # (the claim makes a duplicate delivery a no-op).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # Each job runs in a fresh child: CUDA state never leaks from one job into the next,
    # and the parent process never touches CUDA (it only imports torch: _import_pipeline).
    worker_max_tasks_per_child=1,
    # The prefork pool, replacing the exited child at once rather than at its next 5 s timer
    # (celery/celery#9588): the next queued job starts without idling (worker/celery_pool.py).
    worker_pool="worker.celery_pool:TaskPool",
    task_default_queue=settings.celery_queue,
    task_ignore_result=True,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    # Longer than any training slice, or Redis would hand a running job to a second worker.
    broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_seconds},
    worker_hijack_root_logger=False,
)


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    # Connected, this replaces Celery's own set-up: its lines and the jobs' come out in one
    # format (DISTILLERY_LOG_FORMAT), through the root handler app.logs installs.
    configure_logging(settings)


@signals.celeryd_after_setup.connect
def _no_banner_in_json(instance: Any = None, **_: Any) -> None:
    # The startup banner is printed, not logged: it would be the one line that is not JSON.
    if settings.log_format == "json" and instance is not None:
        instance.quiet = True


# This worker's announcement (app/fleet.py), while it consumes the jobs' queue.
_announcer: Announcer | None = None


@signals.celeryd_after_setup.connect
def _announce_device(sender: str = "", instance: Any = None, **_: Any) -> None:
    # A worker of the jobs' queue also consumes its device kind's (`<queue>.cpu`,
    # `<queue>.cuda`), where jobs asking for that kind go, and says what it has.
    global _announcer
    if instance is None:
        return
    queues = instance.app.amqp.queues
    selected = set(queues.consume_from or queues)
    if settings.celery_queue not in selected:
        return  # an estimate worker: jobs are not routed by it
    capabilities = fleet.detect(settings, [])
    device_queue = job_queue(settings.celery_queue, capabilities.device)
    queues.select_add(device_queue)
    capabilities = replace(capabilities, queues=sorted(selected | {device_queue}))
    _announcer = Announcer(settings, sender, capabilities)


@signals.worker_ready.connect
def _start_announcing(**_: Any) -> None:
    if _announcer is not None:
        _announcer.start()


@signals.worker_shutdown.connect
def _stop_announcing(**_: Any) -> None:
    if _announcer is not None:
        _announcer.stop()


@signals.worker_init.connect
def _import_pipeline(**_: Any) -> None:
    # In the parent, once: every child forked for a job then starts with torch and the
    # pipeline already imported, instead of importing them itself (seconds per job). Importing
    # makes no CUDA call, so the children may still use CUDA after the fork. torch.optim
    # imports torch._dynamo when a job builds its first optimizer: that too, once, here.
    import torch._dynamo  # noqa: F401

    import worker.lifecycle  # noqa: F401


@signals.task_prerun.connect
def _bind_job(task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name == RUN_JOB_TASK and args:
        bind_job(str(args[0]))


@signals.task_postrun.connect
def _forget_job(**_: Any) -> None:
    bind_job(None)
