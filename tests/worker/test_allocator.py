"""The worker's malloc settings: applied once per process on Linux glibc, off when asked."""

import sys

import pytest

from app.settings import Settings
from worker import allocator


def test_the_settings_hold_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_tuned", False)
    assert allocator.tune_allocator(Settings()) is sys.platform.startswith("linux")
    assert allocator.tune_allocator(Settings())  # once applied, they stay


def test_they_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_tuned", False)
    assert allocator.tune_allocator(Settings(malloc_tuning=False)) is False
