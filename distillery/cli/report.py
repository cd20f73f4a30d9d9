"""A finished job's result in words: the report table (teacher, student and baseline on the
test split, with the compression they add up to), one sentence on the distillation gain and the
diagnosis (whether distillation helped and, if not, why). Pure functions of the job's `result`
object, shared by `show`, `watch`, `submit --wait` and `demo`."""

from typing import Any

from distillery.types.catalog.tasks import DEFAULT_TASK, TASKS, Metric, TaskEntry

MODELS = ("teacher", "student", "baseline", "random_init")


def _task(result: dict[str, Any]) -> TaskEntry:
    """The task's catalog entry: it says which test metric the report shows and how."""
    return TASKS.get(result.get("task") or DEFAULT_TASK, TASKS[DEFAULT_TASK])


def _metric(result: dict[str, Any]) -> Metric:
    metric = _task(result).test_metric
    assert metric is not None, "every task names the test metric its report shows"
    return metric


def _cell(row: dict[str, Any], key: str, fmt: str, width: int) -> str:
    """A value of the report, or "-" where the model has none (an ONNX teacher has no arch)."""
    value = row.get(key)
    return f"{'-':>{width}}" if value is None else fmt.format(value)


def report_lines(result: dict[str, Any]) -> list[str]:
    """The report: a row per model (arch, params, bytes, the test metric, CPU latency) and a
    line on the compression."""
    metric = _metric(result)
    key, title, fmt = metric.key, metric.title, metric.format
    lines = [
        "report",
        f"  {'model':<11} {'arch':<14} {'params':>8} {'bytes':>9} {title:>9} {'cpu ms':>8}",
    ]
    for name in MODELS:
        row = result.get(name)
        if not isinstance(row, dict):
            continue
        lines.append(
            f"  {name:<11} {row.get('arch') or '-':<14} {_cell(row, 'params', '{:>8}', 8)} "
            f"{_cell(row, 'bytes', '{:>9}', 9)} {_cell(row, key, fmt, 9)} "
            f"{_cell(row, 'latency_ms_cpu', '{:>8.3f}', 8)}"
        )
    c = result.get("compression") or {}
    if c:
        named = _task(result).quality
        quality = named.sentence.format(c.get(named.key)) if named else ""
        lines.append(
            f"  compression: {c.get('param_ratio')}x fewer parameters, {c.get('size_ratio')}x "
            f"smaller, {c.get('latency_speedup_cpu')}x faster on CPU; {quality}"
        )
    return lines


def gain_line(result: dict[str, Any]) -> str:
    """One plain sentence on what distillation bought: the student against the same student
    trained from scratch (the baseline), in accuracy points or bits per byte, whichever way
    it went."""
    metric = _metric(result)
    key = metric.key
    student = (result.get("student") or {}).get(key)
    baseline = (result.get("baseline") or {}).get(key)
    if baseline is None:
        return "no distillation gain measured: the job trained no from-scratch baseline"
    if student is None:
        return "no distillation gain measured: the student has no test result"
    versus = f"(student {student:.3f} vs baseline {baseline:.3f}, same student from scratch)"
    if metric.unit != "points":  # told in the metric's own unit, lower is better
        saved = round(baseline - student, 3)
        if saved > 0:
            return f"distillation gain: {saved:.3f} {metric.unit} fewer {versus}"
        if saved < 0:
            return f"distillation lost: {-saved:.3f} {metric.unit} more {versus}"
        return f"distillation made no difference {versus}"
    points = round((student - baseline) * 100, 1)
    if points > 0:
        return f"distillation gain: +{points:.1f} points {versus}"
    if points < 0:
        return f"distillation lost {-points:.1f} points {versus}"
    return f"distillation made no difference {versus}"


def diagnosis_lines(result: dict[str, Any]) -> list[str]:
    """The report's diagnosis: whether distillation helped, then each finding (its code and
    what to do); nothing for a report from before diagnoses."""
    diagnosis = result.get("diagnosis")
    if not isinstance(diagnosis, dict):
        return []
    verdict = {
        True: "distillation helped",
        False: "distillation did not help",
        None: "no baseline to tell whether distillation helped",
    }[diagnosis.get("helped")]
    findings = diagnosis.get("findings") or []
    lines = [f"diagnosis: {verdict}" + (":" if findings else "")]
    lines += [f"  - {f['code']}: {f['message']}" for f in findings]
    return lines
