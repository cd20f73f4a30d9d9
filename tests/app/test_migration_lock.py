"""Two API processes starting on a new PostgreSQL database both upgrade its schema: the second
waits for the first instead of dying on a duplicate table (issue 6, item 1)."""

import subprocess
import sys

import pytest
from sqlalchemy import inspect

from app.db import get_engine

pytestmark = pytest.mark.services

UPGRADE = "import sys; from app.db import upgrade_database; upgrade_database(sys.argv[1])"


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_upgrades_of_a_new_database_both_succeed(
    postgres_url: str, attempt: int
) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE, postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    assert {"job", "file", "api_key"} <= set(inspect(get_engine(postgres_url)).get_table_names())
