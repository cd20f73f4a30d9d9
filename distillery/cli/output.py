"""How the client commands print: rich on a terminal, plain text when stdout goes elsewhere,
JSON with --json (one document, or JSON lines for a stream); errors go to stderr. Also the
small formatters every command shares (times, durations, sizes, metrics, tables)."""

import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from distillery.errors import DistilleryError
from distillery.types.catalog.tasks import TASKS

# The metrics of an epoch that a progress line shows, in order, with their labels: the
# training loss, then the validation metric of each task (its catalog entry), whichever the
# job records.
SHOWN_METRICS = (
    ("train_loss", "loss"),
    *(
        (task.validation_metric.key, task.validation_metric.short)
        for task in TASKS.values()
        if task.validation_metric is not None
    ),
)


def jsonable(value: Any) -> Any:
    """A pydantic model (or a list of them) as plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def when(moment: datetime | None) -> str:
    """A UTC time as `YYYY-MM-DD HH:MM:SSZ` ("-" for none)."""
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}Z"


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 2h07m; "-" for an unknown one."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def size(count: int | None) -> str:
    """Bytes in B, KiB, MiB, GiB."""
    if count is None:
        return "-"
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def metric_text(values: Mapping[str, Any]) -> str:
    """An epoch's metrics as `loss 0.2814  val_acc 0.2361`."""
    shown = [
        f"{label} {values[key]:.4f}"
        for key, label in SHOWN_METRICS
        if isinstance(values.get(key), int | float)
    ]
    return "  ".join(shown)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Columns padded to their widest cell (the format `distillery keys list` prints)."""
    cells = [[str(c) for c in row] for row in (headers, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


class Output:
    """Where a command's output goes. `rich`: stdout is a terminal and --json was not given."""

    def __init__(self, json_mode: bool = False, console: Console | None = None) -> None:
        self.json = json_mode
        # soft_wrap: long lines (an event's message) wrap at the terminal, not mid-word by rich
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.rich = not json_mode and self.console.is_terminal

    def document(self, value: Any) -> None:
        """One JSON document (--json)."""
        print(json.dumps(jsonable(value), indent=2), flush=True)

    def json_line(self, value: Any) -> None:
        """One line of a JSON lines stream (--json with a stream: watch, logs --follow)."""
        print(json.dumps(jsonable(value), separators=(",", ":")), flush=True)

    def line(self, text: str = "", style: str | None = None) -> None:
        if self.rich:
            self.console.print(text, style=style, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not self.rich:
            for text in plain_table(headers, rows):
                print(text)
            return
        table = Table(box=None, header_style="bold", pad_edge=False)
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(str(c) for c in row))
        self.console.print(table)

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """`name: value` lines, the names aligned."""
        width = max((len(name) for name, _ in pairs), default=0)
        for name, value in pairs:
            self.line(f"{name + ':':<{width + 1}} {value}")

    def error(self, error: DistilleryError | str) -> None:
        """The API's error (code, message, param) on stderr; as {"error": ...} with --json."""
        if isinstance(error, str):
            body: dict[str, Any] = {"code": "error", "message": error, "param": None}
            text = error
        else:
            body = {"code": error.code, "message": error.message, "param": error.param}
            body["status"] = error.status
            text = str(error)
        if self.json:
            print(json.dumps({"error": body}), file=sys.stderr, flush=True)
        else:
            print(f"distillery: error: {text}", file=sys.stderr, flush=True)
