"""Temperature schedules: the T of each epoch."""

import pytest

from worker.kd.schedules import TemperatureSchedule


def temps(spec: dict, start: float = 4.0, epochs: int = 5) -> list[float]:
    schedule = TemperatureSchedule(spec, start, epochs)
    return [round(schedule.temperature(e), 6) for e in range(epochs)]


def test_constant() -> None:
    assert temps({"kind": "constant"}) == [4.0] * 5


def test_linear_goes_from_start_to_end() -> None:
    assert temps({"kind": "linear", "end": 2.0}) == [4.0, 3.5, 3.0, 2.5, 2.0]


def test_cosine_goes_from_start_to_end() -> None:
    values = temps({"kind": "cosine", "end": 2.0})
    assert values[0] == 4.0 and values[-1] == 2.0 and values[2] == pytest.approx(3.0)
    assert values == sorted(values, reverse=True)


def test_step_multiplies_every_step_size_epochs() -> None:
    assert temps({"kind": "step", "step_size": 2, "gamma": 0.5}) == [4.0, 4.0, 2.0, 2.0, 1.0]


def test_one_epoch_schedules_use_the_start() -> None:
    assert temps({"kind": "linear", "end": 1.0}, epochs=1) == [4.0]


def test_plateau_lowers_t_when_the_metric_stalls_and_round_trips() -> None:
    spec = {
        "kind": "plateau",
        "metric": "val_loss",
        "factor": 0.5,
        "patience": 1,
        "min_temperature": 1.5,
        "max_temperature": 20.0,
    }
    schedule = TemperatureSchedule(spec, 4.0, 10)
    seen = []
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]:
        seen.append(schedule.temperature(len(seen)))
        schedule.observe({"val_loss": loss, "val_accuracy": 0.5})
    assert seen == [4.0, 4.0, 4.0, 4.0, 2.0, 2.0, 1.5, 1.5]
    copy = TemperatureSchedule(spec, 4.0, 10)
    copy.load_state_dict(schedule.state_dict())
    assert copy.temperature(8) == schedule.temperature(8)


def test_plateau_on_accuracy_wants_it_to_rise() -> None:
    spec = {
        "kind": "plateau",
        "metric": "val_accuracy",
        "factor": 2.0,
        "patience": 0,
        "min_temperature": 1.0,
        "max_temperature": 10.0,
    }
    schedule = TemperatureSchedule(spec, 2.0, 10)
    schedule.observe({"val_loss": 1.0, "val_accuracy": 0.5})
    schedule.observe({"val_loss": 1.0, "val_accuracy": 0.6})
    assert schedule.temperature(2) == 2.0
    schedule.observe({"val_loss": 1.0, "val_accuracy": 0.6})
    assert schedule.temperature(3) == 4.0
