"""Worker fixtures."""

from pathlib import Path

import pytest

from app.db import upgrade_database
from app.settings import Settings


@pytest.fixture
def sqlite_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    """Settings on SQLite only, for pipeline tests whose subject is not the database."""
    upgrade_database(sqlite_url)
    return Settings(
        database_url=sqlite_url,
        artifact_url=str(tmp_path / "artifacts"),
        work_dir=str(tmp_path / "work"),
        broker_url=None,
        auto_migrate=False,
        reaper_interval_seconds=3600,
    )
