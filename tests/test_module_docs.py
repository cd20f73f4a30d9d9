"""Every module of the service, the worker and the SDK opens with a docstring saying what it holds,
and none is over 500 lines (a longer one holds more than one thing: split it by responsibility)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    path for package in ("app", "worker", "distillery") for path in (ROOT / package).rglob("*.py")
)
MAX_LINES = 500


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_says_what_it_holds_and_stays_small(path: Path) -> None:
    text = path.read_text()
    assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(ROOT)} has no opening docstring"
    assert len(text.splitlines()) <= MAX_LINES
