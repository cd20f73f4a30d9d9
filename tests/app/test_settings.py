"""Settings from DISTILLERY_* variables: a value the service cannot run with stops it at start,
naming the variable, instead of breaking a worker later (a modulo by zero, a lease that has
always expired)."""

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from app.settings import SettingsError, get_settings


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DISTILLERY_CANCEL_CHECK_STEPS", "0"),
        ("DISTILLERY_LEASE_SECONDS", "0"),
        ("DISTILLERY_LEASE_SECONDS", "-5"),
        ("DISTILLERY_MAX_ATTEMPTS", "0"),
        ("DISTILLERY_REAPER_INTERVAL_SECONDS", "0"),
        ("DISTILLERY_RUNNER_POLL_SECONDS", "0"),
        ("DISTILLERY_GC_INTERVAL_SECONDS", "0"),
        ("DISTILLERY_HEADER_TIMEOUT_SECONDS", "0"),
        ("DISTILLERY_FILE_CHECK_TIMEOUT_SECONDS", "-1"),
    ],
)
def test_a_value_the_service_cannot_run_with_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}='{value}'"):
        get_settings()


def test_the_smallest_working_values_are_accepted(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv("DISTILLERY_CANCEL_CHECK_STEPS", "1")
    monkeypatch.setenv("DISTILLERY_LEASE_SECONDS", "0.5")
    monkeypatch.setenv("DISTILLERY_MAX_EVENT_STREAMS", "0")  # streams off, polling still works
    settings = get_settings()
    assert (settings.cancel_check_steps, settings.lease_seconds) == (1, 0.5)
    assert settings.max_event_streams == 0


def test_a_worker_started_with_a_bad_value_stops_naming_the_variable() -> None:
    worker = subprocess.run(
        [sys.executable, "-m", "worker.run", "job_x"],
        env={**os.environ, "DISTILLERY_CANCEL_CHECK_STEPS": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode != 0
    assert "DISTILLERY_CANCEL_CHECK_STEPS='0'" in worker.stderr
    assert "greater than or equal to 1" in worker.stderr
