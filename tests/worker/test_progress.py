"""Progress and ETA, on a clock the test moves."""

from worker.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def planned(clock: Clock) -> Progress:
    progress = Progress(clock)
    progress.plan({"validate": 0.0, "train": 80.0, "export": 20.0})
    return progress


def test_the_fraction_counts_finished_stages_and_epochs() -> None:
    progress = planned(Clock())
    progress.enter("validate")
    assert progress.snapshot()["fraction"] == 0.0
    progress.enter("train")
    progress.start_epochs(4)
    assert progress.snapshot() | {"eta_seconds": None} == {
        "stage": "train",
        "epoch": 0,
        "epochs": 4,
        "fraction": 0.0,
        "eta_seconds": None,
    }
    progress.epoch_done(1)
    assert progress.snapshot()["fraction"] == 0.2
    progress.enter("export")
    assert progress.snapshot()["fraction"] == 0.8
    assert progress.snapshot(done=True) == {
        "stage": None,
        "epoch": None,
        "epochs": None,
        "fraction": 1.0,
        "eta_seconds": 0,
    }


def test_the_eta_extrapolates_the_rate_since_the_origin() -> None:
    clock = Clock()
    progress = planned(clock)
    progress.enter("train")
    progress.start_epochs(4)
    assert progress.snapshot()["eta_seconds"] is None  # nothing done yet: no rate
    clock.now += 10
    progress.epoch_done(1)  # 20% in 10 s: 80% left takes 40 s
    assert progress.snapshot()["eta_seconds"] == 40.0


def test_a_resumed_stage_measures_its_rate_from_the_resume() -> None:
    clock = Clock()
    progress = planned(clock)
    progress.enter("train")
    progress.start_epochs(4)
    progress.resumed_after(2)  # half the stage was done by an earlier attempt
    assert progress.snapshot()["fraction"] == 0.4
    assert progress.snapshot()["eta_seconds"] is None  # not "done at once"
    clock.now += 5
    progress.epoch_done(3)  # 20% in 5 s: 40% left takes 10 s
    assert progress.snapshot()["eta_seconds"] == 10.0


def test_an_empty_plan_never_divides_by_zero() -> None:
    progress = Progress(Clock())
    progress.plan({"validate": 0.0})
    progress.enter("validate")
    assert progress.snapshot()["fraction"] == 0.0
