"""The FileChecker: a check that dies or runs out of time refuses the file; a file whose
checker died is claimed again once its lease expires."""

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from app.db import session_scope
from app.files import service
from app.models import File, utcnow
from app.settings import Settings
from tests.app.files.conftest import npz_bytes, refused, upload_checked


def test_a_check_past_its_time_limit_marks_the_file_refused(
    make_client: Callable[..., TestClient],
) -> None:
    import numpy as np

    client = make_client(file_check_timeout_seconds=0.01)
    body = upload_checked(client, "d.npz", npz_bytes(x=np.zeros((3, 2))), "dataset")
    refused(body, "ran out of memory or time")


def test_an_expired_lease_is_claimed_again(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        session.add(
            File(id="file_a", purpose="dataset", filename="a.npz", format="npz", storage_key="k")
        )
    with session_scope(settings.database_url) as session:
        assert service.claim_next(session, lease_seconds=60) == "file_a"
        assert service.claim_next(session, lease_seconds=60) is None
        session.execute(
            update(File)
            .where(File.id == "file_a")
            .values(lease_expires_at=utcnow() - timedelta(seconds=5))
        )
        session.commit()
        assert service.claim_next(session, lease_seconds=60) == "file_a"
        assert service.finish_error(session, "file_a", "bad") is True
        assert service.claim_next(session, lease_seconds=60) is None


def test_the_check_runs_under_the_memory_limit(make_client: Callable[..., TestClient]) -> None:
    import numpy as np

    # Too little memory to even start the check: the child dies, the API carries on.
    client = make_client(file_check_memory_bytes=32 * 1024 * 1024)
    body = upload_checked(client, "d.npz", npz_bytes(x=np.zeros((3, 2))), "dataset")
    refused(body, "ran out of memory or time")
    assert client.get("/healthz").status_code == 200
