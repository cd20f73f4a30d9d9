"""The FileChecker: a check that is killed, runs out of memory or time refuses the file; a check
that fails otherwise runs again, then records its own error; a file whose checker died is
claimed again once its lease expires."""

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.db import session_scope
from app.files import service
from app.files.checker import MAX_ATTEMPTS, FileChecker
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


def fake_check(script: str) -> Callable[[FileChecker, str], list[str]]:
    """A FileChecker.command running `script` (with `file_id` and `real` defined) instead of the
    check; `real()` runs the real check."""
    prelude = (
        "import runpy, sys\n"
        "file_id = sys.argv[1]\n"
        "def real():\n"
        "    sys.argv = ['check', file_id]\n"
        "    runpy.run_module('app.files.check', run_name='__main__')\n"
    )

    def command(self: FileChecker, file_id: str) -> list[str]:
        return [sys.executable, "-c", prelude + script, file_id]

    return command


def test_a_failing_check_records_its_own_error_after_retries(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import numpy as np

    attempts = tmp_path / "attempts"
    script = (
        f"open({str(attempts)!r}, 'a').write('x')\n"
        "sys.stderr.write('lots of log lines\\nConnectionError: the database went away\\n')\n"
        "sys.exit(1)\n"
    )
    monkeypatch.setattr(FileChecker, "command", fake_check(script))
    client = make_client()
    body = upload_checked(client, "d.npz", npz_bytes(x=np.zeros((3, 2))), "dataset")
    message = refused(body, "the check failed: ConnectionError: the database went away")
    assert "memory" not in message
    assert attempts.read_text() == "x" * MAX_ATTEMPTS


def test_a_check_that_fails_once_passes_on_the_next_attempt(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import numpy as np

    marker = tmp_path / "failed-once"
    script = (
        "import os\n"
        f"if not os.path.exists({str(marker)!r}):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    sys.exit('the store was away')\n"
        "real()\n"
    )
    monkeypatch.setattr(FileChecker, "command", fake_check(script))
    client = make_client()
    body = upload_checked(client, "d.npz", npz_bytes(x=np.zeros((3, 2))), "dataset")
    assert body["status"] == "ready", body


@pytest.mark.parametrize(
    "script",
    [
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "raise MemoryError\n",
    ],
    ids=["killed-by-a-signal", "memory-error"],
)
def test_a_killed_child_or_a_memory_error_is_out_of_memory(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch, script: str
) -> None:
    import numpy as np

    monkeypatch.setattr(FileChecker, "command", fake_check(script))
    client = make_client()
    body = upload_checked(client, "d.npz", npz_bytes(x=np.zeros((3, 2))), "dataset")
    refused(body, "ran out of memory or time")


def test_the_child_is_killed_when_renewing_the_lease_fails(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(settings.database_url) as session:
        session.add(
            File(id="file_a", purpose="dataset", filename="a.npz", format="npz", storage_key="k")
        )
        assert service.claim_next(session, lease_seconds=60) == "file_a"

    def broken_renew(*_args: object) -> None:
        raise RuntimeError("database away")

    monkeypatch.setattr(service, "renew_lease", broken_renew)
    monkeypatch.setattr(FileChecker, "command", fake_check("import time\ntime.sleep(600)\n"))
    checker = FileChecker(settings.model_copy(update={"lease_seconds": 0.15}))
    with pytest.raises(RuntimeError, match="database away"):
        checker.run("file_a")
    assert checker._child is not None
    assert checker._child.poll() is not None  # no child left behind
