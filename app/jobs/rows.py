"""What every side of the job service shares: the statuses that hold a worker, and reading a
job row by its id alone, whichever tenant it belongs to (`unscoped_job`).

The API's commands take a tenant (app/jobs/service.py); `unscoped_job` is for those that act
on any tenant's job: the worker after its claim, the embedded runner, maintenance, tests.
"""

from sqlalchemy.orm import Session

from app.jobs.errors import JobNotFound
from app.models import Job, JobStatus

# A tenant's jobs in these hold a worker and count against its running-job limit.
RUNNING_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.PAUSING)


def unscoped_job(session: Session, job_id: str) -> Job:
    """The job, whichever tenant's it is (JobNotFound when there is none). Not for the API's
    requests: those read it with service.get_job, scoped to the caller's tenant."""
    if "\x00" in job_id:  # no id has one, and PostgreSQL refuses to compare with it
        raise JobNotFound(job_id)
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job
