"""A compress step's loss in the task's test metric, judged against its tolerance: accuracy
lost is before minus after, bits per byte lost is after minus before; beyond the tolerance the
job gets a warning naming the step, within it (or with none stated) nothing."""

from types import SimpleNamespace
from typing import Any

import pytest

from worker.tolerance import judged


def job(task: str) -> Any:
    events: list[tuple[str, str]] = []
    return SimpleNamespace(
        task=SimpleNamespace(name=task),
        event=lambda kind, message, data=None: events.append((kind, message)),
        events=events,
    )


def test_accuracy_lost_beyond_the_tolerance_is_a_warning() -> None:
    j = job("classification")
    verdict = judged(j, "quantize", {"test_accuracy": 0.90}, {"test_accuracy": 0.88}, 0.005)
    assert verdict == {"metric": "accuracy", "lost": 0.02, "tolerance": 0.005, "within": False}
    assert j.events == [
        (
            "warning",
            "quantize: lost 0.0200 accuracy (0.9 -> 0.88), more than its tolerance of 0.005",
        )
    ]


@pytest.mark.parametrize("tolerance", [0.05, None])
def test_within_the_tolerance_or_without_one_nothing_is_said(tolerance: float | None) -> None:
    j = job("classification")
    verdict = judged(j, "prune", {"test_accuracy": 0.90}, {"test_accuracy": 0.88}, tolerance)
    assert verdict["lost"] == 0.02 and verdict.get("within", True)
    assert j.events == []


def test_bits_per_byte_lost_is_the_increase() -> None:
    j = job("language_model")
    verdict = judged(j, "quantize", {"test_bits_per_byte": 2.10}, {"test_bits_per_byte": 2.05}, 0.0)
    assert verdict == {"metric": "bits_per_byte", "lost": -0.05, "tolerance": 0.0, "within": True}
