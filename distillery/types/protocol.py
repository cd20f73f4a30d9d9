"""The names the API and the workers reach each other by: Celery task names, the embedded
runner's child protocol (its environment variable and exit codes) and the upload checker's
exit code. The API never imports the worker: it sends these names and reads these codes."""

# Celery task names (worker/tasks.py registers them; app/dispatch sends them, and a
# job's worker sends LABEL_SHARDS_TASK).
RUN_JOB_TASK = "distillery.run_job"
ESTIMATE_TASK = "distillery.estimate"
# Sent by a job's worker to its own queue, one per shard of its soft labels beyond the first:
# any worker that takes it labels shards of that job until none is left (worker/tasks.py).
LABEL_SHARDS_TASK = "distillery.label_shards"


def job_queue(base: str, device: str) -> str:
    """The queue a job goes to: the base queue (DISTILLERY_CELERY_QUEUE) for a job any worker
    may run, `<base>.<device>` for one that needs a device kind; a worker consumes both."""
    return base if device == "any" else f"{base}.{device}"


# Tells `python -m worker.run` which process it must not outlive.
PARENT_PID_ENV = "DISTILLERY_RUNNER_PID"
# How the runner's child says it left the job queued because the database could not be
# reached (EX_TEMPFAIL): try again later; the job is not at fault.
EXIT_DATABASE_UNREACHABLE = 75

# The exit code of an upload check that ran out of memory (the checker reports the limit).
EXIT_OUT_OF_MEMORY = 3
