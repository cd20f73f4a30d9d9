"""The "auto" search's plan and choice: temperatures first, then the weights at the best
temperature; early stopping of a trailing candidate; ties to the earlier candidate."""

from worker.kd import auto


def test_temperatures_then_weights_at_the_best_temperature() -> None:
    search = auto.Search({"temperature": "auto", "kd_weight": "auto", "ce_weight": 0.1}, True)
    assert search.size() == 6
    tried = []
    scores = {1.0: 0.80, 2.0: 0.86, 4.0: 0.84, 8.0: 0.70}
    while (values := search.next()) is not None:
        tried.append(values)
        t, kd, _ce = values
        score = scores.get(t, 0.0) if kd == 0.9 else 0.87 if kd == 0.5 else 0.85
        search.tried.append(auto.Candidate(*values, scores=[score]))
    assert tried == [
        (1.0, 0.9, 0.1),
        (2.0, 0.9, 0.1),
        (4.0, 0.9, 0.1),
        (8.0, 0.9, 0.1),
        (2.0, 0.5, 0.5),  # the weights at the best temperature, ce_weight = 1 - kd_weight
        (2.0, 1.0, 0.0),
    ]
    chosen = search.chosen()
    assert (chosen.temperature, chosen.kd_weight, chosen.ce_weight) == (2.0, 0.5, 0.5)


def test_only_the_auto_field_is_searched_and_the_others_are_the_specs() -> None:
    search = auto.Search({"temperature": 3.0, "kd_weight": "auto", "ce_weight": 0.2}, True)
    plan = []
    while (values := search.next()) is not None:
        plan.append(values)
        search.tried.append(auto.Candidate(*values, scores=[0.5]))
    assert plan == [(3.0, 0.9, 0.1), (3.0, 0.5, 0.5), (3.0, 1.0, 0.0)]
    search = auto.Search({"temperature": "auto", "kd_weight": 0.7, "ce_weight": 0.2}, False)
    assert search.size() == 4 and search.next() == (1.0, 0.7, 0.2)


def test_a_trailing_candidate_is_stopped_and_ties_go_to_the_earlier() -> None:
    search = auto.Search({"temperature": "auto", "kd_weight": 0.9, "ce_weight": 0.1}, True)
    search.tried.append(auto.Candidate(1.0, 0.9, 0.1, scores=[0.60, 0.70]))
    assert search.trails(1, 0.57) and not search.trails(1, 0.59)
    assert not search.trails(3, 0.1)  # nothing to compare with at epoch 3
    search.tried.append(auto.Candidate(2.0, 0.9, 0.1, scores=[0.65, 0.70]))
    assert search.chosen().temperature == 1.0
    lower = auto.Search({"temperature": "auto", "kd_weight": 0.9, "ce_weight": 0.1}, False)
    lower.tried.append(auto.Candidate(1.0, 0.9, 0.1, scores=[2.0]))
    assert lower.trails(1, 2.03) and not lower.trails(1, 2.01)


def test_resolved_settings_before_and_after_the_search() -> None:
    distill = {"temperature": "auto", "kd_weight": "auto", "ce_weight": 0.1, "epochs": 8}
    assert auto.resolved(distill, None)["temperature"] == 4.0
    chosen = auto.resolved(distill, {"temperature": 2.0, "kd_weight": 0.5})
    assert (chosen["temperature"], chosen["kd_weight"], chosen["ce_weight"]) == (2.0, 0.5, 0.5)
    assert auto.resolved({"temperature": 3.0, "kd_weight": 0.2, "ce_weight": 0.4}, None) == {
        "temperature": 3.0,
        "kd_weight": 0.2,
        "ce_weight": 0.4,
    }
    assert (
        auto.search_epochs(8) == 2 and auto.search_epochs(60) == 10 and auto.search_epochs(1) == 1
    )
    assert auto.judged_from(10) == 5 and auto.judged_from(1) == 1 and auto.judged_from(3) == 2
