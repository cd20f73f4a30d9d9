"""A job's size / latency / accuracy frontier (its result's `frontier`: every model it produced,
measured in one runtime on one CPU thread) as the CLI prints it and as a plot: two panels,
the test metric against bytes on disk and against batch-1 p50 latency, each model a labelled
point, both axes of size and time on a log scale. The SVG is self-contained (no script, no
fonts or styles fetched from anywhere): the worker uploads it as the job's `frontier.svg`
(which the dashboard shows), the CLI draws the same from a result. Pure functions of the result
object, standard library only."""

import math
from html import escape
from typing import Any

WIDTH, HEIGHT = 360, 260  # one panel
MARGIN = {"left": 58, "right": 16, "top": 30, "bottom": 44}
COLORS = {
    "teacher": "#1f6fd1",
    "student": "#e4572e",
    "baseline": "#2a9d3f",
    "random_init": "#7f7f7f",
    "pruned": "#8e44ad",
    "int8": "#d4a017",
}
PANELS = (("bytes", "bytes on disk (ONNX)"), ("latency_ms_p50", "batch-1 p50 latency (ms)"))


def frontier_lines(result: dict[str, Any]) -> list[str]:
    """The frontier as a table: a row per model, then the runtime and CPU it was timed on."""
    frontier = result.get("frontier")
    if not isinstance(frontier, dict):
        return []
    metric = frontier["metric"]
    lines = [
        "frontier",
        f"  {'model':<11} {'params':>9} {'bytes':>10} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'/s @32':>8} {metric:>9} {'% teach':>7} {'top-1 =':>7}",
    ]
    for row in frontier["rows"]:
        lines.append(
            f"  {row['model']:<11} {_num(row.get('params'), 9, '{:>9}')} "
            f"{_num(row.get('bytes'), 10, '{:>10}')} "
            f"{_num(row.get('latency_ms_p50'), 8, '{:>8.3f}')} "
            f"{_num(row.get('latency_ms_p95'), 8, '{:>8.3f}')} "
            f"{_num(row.get('throughput_per_s_batch32'), 8, '{:>8.0f}')} "
            f"{_num(row.get(f'test_{metric}'), 9, '{:>9.4f}')} "
            f"{_num(row.get(f'{metric}_pct_of_teacher'), 7, '{:>7.1f}')} "
            f"{_num(row.get('top1_agreement'), 7, '{:>7.3f}')}"
        )
    lines.append(
        f"  timed in {frontier.get('runtime')}, {frontier.get('threads')} thread, "
        f"on {frontier.get('cpu')}"
    )
    return lines


def _num(value: Any, width: int, fmt: str) -> str:
    return f"{'-':>{width}}" if value is None else fmt.format(value)


def frontier_svg(result: dict[str, Any]) -> str | None:
    """The two panels side by side as one SVG document; None when the result has no
    frontier."""
    frontier = result.get("frontier")
    if not isinstance(frontier, dict):
        return None
    metric = frontier["metric"]
    key = f"test_{metric}"
    panels = [
        _panel(frontier["rows"], x_key, x_title, key, metric, i * WIDTH)
        for i, (x_key, x_title) in enumerate(PANELS)
    ]
    caption = escape(
        f"{frontier.get('runtime')}, {frontier.get('threads')} thread, {frontier.get('cpu')}"
    )
    total_height = HEIGHT + 18
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * WIDTH}" height="{total_height}" '
        f'viewBox="0 0 {2 * WIDTH} {total_height}" font-family="sans-serif" font-size="11">'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(panels)}'
        f'<text x="{WIDTH}" y="{total_height - 4}" text-anchor="middle" fill="#555">'
        f"{caption}</text></svg>"
    )


def _panel(
    rows: list[dict[str, Any]], x_key: str, x_title: str, y_key: str, metric: str, left: int
) -> str:
    points = [
        (math.log10(r[x_key]), r[y_key], r["model"])
        for r in rows
        if isinstance(r.get(x_key), (int, float)) and r[x_key] > 0 and r.get(y_key) is not None
    ]
    plot_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    plot_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    x0, y0 = left + MARGIN["left"], MARGIN["top"]
    parts = [
        f'<text x="{left + WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">'
        f"{escape(metric)} vs {escape(x_title)}</text>",
        f'<rect x="{x0}" y="{y0}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
        f'<text x="{x0 + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{escape(x_title)}, log scale</text>",
    ]
    if not points:
        parts.append(
            f'<text x="{x0 + plot_w / 2}" y="{y0 + plot_h / 2}" text-anchor="middle">'
            "no timed models</text>"
        )
        return "".join(parts)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = _span(min(xs), max(xs), 0.1)
    y_lo, y_hi = _span(min(ys), max(ys), 0.01)

    def sx(v: float) -> float:
        return x0 + (v - x_lo) / (x_hi - x_lo) * plot_w

    def sy(v: float) -> float:
        return y0 + plot_h - (v - y_lo) / (y_hi - y_lo) * plot_h

    for i in range(5):  # y ticks
        v = y_lo + (y_hi - y_lo) * i / 4
        parts.append(
            f'<text x="{x0 - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>'
            f'<line x1="{x0}" x2="{x0 + plot_w}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" '
            'stroke="#eee"/>'
        )
    for exponent in range(math.floor(x_lo), math.ceil(x_hi) + 1):  # x ticks at powers of 10
        if x_lo <= exponent <= x_hi:
            parts.append(
                f'<text x="{sx(exponent):.1f}" y="{y0 + plot_h + 14}" text-anchor="middle">'
                f"{10.0**exponent:g}</text>"
            )
    for x, y, model in points:
        color = COLORS.get(model, "#333")
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{color}">'
            f"<title>{escape(model)}: {y:.4g} at {10**x:.4g}</title></circle>"
            f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 6:.1f}" fill="{color}">{escape(model)}</text>'
        )
    return "".join(parts)


def _span(lo: float, hi: float, pad: float) -> tuple[float, float]:
    """An axis range around [lo, hi], never empty."""
    if hi - lo < pad:
        middle = (lo + hi) / 2
        return middle - pad, middle + pad
    margin = (hi - lo) * 0.1
    return lo - margin, hi + margin
