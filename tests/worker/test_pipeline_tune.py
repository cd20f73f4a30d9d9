"""`temperature: "auto"` and `kd_weight: "auto"`: the tune stage tries the candidates on the
validation split, records each as `tune` metrics, and distillation uses the values it chose
(the report says which, and why)."""

from app.models import JobStatus
from app.settings import Settings
from tests.worker.test_pipeline import load, submit
from worker import lifecycle

AUTO_JOB = {
    "dataset": {"name": "digits"},
    "teacher": {"arch": "mlp", "params": {"hidden": [64]}, "train": {"epochs": 3}},
    "student": {"arch": "mlp", "params": {"hidden": [8]}},
    "distill": {"temperature": "auto", "kd_weight": "auto", "epochs": 4, "lr": 0.01},
    "export": ["safetensors"],
}


def test_auto_temperature_and_weight_are_searched_and_used(sqlite_settings: Settings) -> None:
    job_id = submit(sqlite_settings, AUTO_JOB)
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    tuning = job.result["tuning"]
    candidates = tuning["candidates"]
    # 4 temperatures at kd_weight 0.9, then 2 more weights at the best temperature; each one
    # epoch (a quarter of distill's 4).
    assert len(candidates) == 6 and tuning["epochs_per_candidate"] == 1
    assert [c["temperature"] for c in candidates[:4]] == [1.0, 2.0, 4.0, 8.0]
    best_t = max(candidates[:4], key=lambda c: c["scores"][0])["temperature"]
    assert [(c["temperature"], c["kd_weight"]) for c in candidates[4:]] == [
        (best_t, 0.5),
        (best_t, 1.0),
    ]
    chosen = tuning["chosen"]
    best = max(candidates, key=lambda c: max(c["scores"]))
    assert (chosen["temperature"], chosen["kd_weight"]) == (best["temperature"], best["kd_weight"])
    assert chosen["ce_weight"] == round(1 - chosen["kd_weight"], 6)

    tune = sorted((m for m in metrics if m.stage == "tune"), key=lambda m: m.epoch)
    assert [m.values["candidate"] for m in tune] == [1, 2, 3, 4, 5, 6]
    assert [m.values["val_accuracy"] for m in tune] == [c["scores"][0] for c in candidates]
    # Distillation ran with the chosen temperature; the event says what was chosen.
    distill = [m for m in metrics if m.stage == "student" or m.stage == "distill"]
    assert distill and all(m.values["temperature"] == chosen["temperature"] for m in distill)
    assert any(e.message.startswith("tune: chose temperature") for e in events)
