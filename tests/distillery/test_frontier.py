"""The frontier as the CLI prints and plots it (distillery.types.frontier): a model without
timings (a teacher given as logits) is a row of dashes and no point; text from the result is
escaped, never markup; a result without a frontier draws nothing."""

import xml.etree.ElementTree as ElementTree
from typing import Any

from distillery.types.frontier import frontier_lines, frontier_svg

RESULT: dict[str, Any] = {
    "frontier": {
        "runtime": "onnxruntime 1.0",
        "threads": 1,
        "cpu": "A <b>CPU</b> & co",
        "metric": "accuracy",
        "rows": [
            {"model": "teacher", "params": None, "bytes": None, "latency_ms_p50": None,
             "latency_ms_p95": None, "throughput_per_s_batch32": None, "test_accuracy": 0.9,
             "accuracy_pct_of_teacher": 100.0, "top1_agreement": None},
            {"model": "student", "params": 858, "bytes": 17246, "latency_ms_p50": 0.02,
             "latency_ms_p95": 0.03, "throughput_per_s_batch32": 5e5, "test_accuracy": 0.85,
             "accuracy_pct_of_teacher": 94.44, "top1_agreement": None},
            {"model": "int8", "params": 858, "bytes": 5000, "latency_ms_p50": 0.015,
             "latency_ms_p95": 0.02, "throughput_per_s_batch32": 6e5, "test_accuracy": 0.84,
             "accuracy_pct_of_teacher": 93.33, "top1_agreement": None},
        ],
    }
}  # fmt: skip


def test_the_table_has_a_row_per_model_and_names_where_it_was_timed() -> None:
    lines = frontier_lines(RESULT)
    assert lines[0] == "frontier"
    teacher = lines[2].split()
    assert teacher[0] == "teacher" and teacher[1:5] == ["-"] * 4 and "0.9000" in teacher
    assert lines[3].split()[:3] == ["student", "858", "17246"]
    assert lines[-1] == "  timed in onnxruntime 1.0, 1 thread, on A <b>CPU</b> & co"


def test_the_plot_draws_each_timed_model_in_both_panels_and_escapes_text() -> None:
    svg = frontier_svg(RESULT)
    assert svg is not None
    root = ElementTree.fromstring(svg)  # well-formed XML: the CPU's name did not break it
    namespace = "{http://www.w3.org/2000/svg}"
    circles = root.findall(f".//{namespace}circle")
    # The teacher has no size or latency: two models in each of the two panels.
    assert len(circles) == 4
    assert {c.find(f"{namespace}title").text.split(":")[0] for c in circles} == {  # type: ignore[union-attr]
        "student",
        "int8",
    }
    assert "A &lt;b&gt;CPU&lt;/b&gt; &amp; co" in svg
    assert not root.findall(f".//{namespace}script")


def test_a_result_without_a_frontier_draws_nothing() -> None:
    assert frontier_svg({"student": {}}) is None
    assert frontier_lines({}) == []
