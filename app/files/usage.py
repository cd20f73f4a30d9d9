"""What a job may do with the files it names (checked when the job is created)."""

from typing import Any

from sqlalchemy.orm import Session


def check_job_files(session: Session, tenant: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Check every file the resolved `spec` names (the tenant's, ready, of the right purpose and
    shape for its role); return (file_id, role) pairs. Raises SpecError naming the field."""
    return []
