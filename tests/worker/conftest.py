"""Worker fixtures."""

from pathlib import Path

import pytest

from app.settings import Settings
from tests.conftest import make_settings


@pytest.fixture
def sqlite_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    """Settings on SQLite only, for pipeline tests whose subject is not the database."""
    return make_settings(sqlite_url, tmp_path)
