"""Two API processes starting on a new PostgreSQL database (issue 6, item 1) or a new SQLite file
(issue 17, item 9e) both upgrade its schema: the second waits for the first instead of dying on
a duplicate table."""

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from app.db import get_engine

UPGRADE = "import sys; from app.db import upgrade_database; upgrade_database(sys.argv[1])"


def upgrade_at_once(url: str) -> None:
    """Three processes upgrade the database at `url` at the same time; each must succeed."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    assert {"job", "file", "api_key"} <= set(inspect(get_engine(url)).get_table_names())


@pytest.mark.services
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_upgrades_of_a_new_database_both_succeed(
    postgres_url: str, attempt: int
) -> None:
    upgrade_at_once(postgres_url)


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_upgrades_of_a_new_sqlite_file_both_succeed(
    tmp_path: Path, attempt: int
) -> None:
    """Before the file lock, two of three processes usually died on "table job already exists"
    (every attempt failed so on the 2-core machine)."""
    upgrade_at_once(f"sqlite:///{tmp_path / 'new.db'}")
