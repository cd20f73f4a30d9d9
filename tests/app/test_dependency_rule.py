"""DESIGN section 1: app/ never imports worker/ or torch, so the API starts fast and never
touches CUDA."""

import ast
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_app_module_imports_worker_or_torch() -> None:
    offenders = {
        str(path.relative_to(APP.parent)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in ("worker", "torch")
        )
        for path in APP.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def loaded_after_import(modules: str, packages: tuple[str, ...]) -> list[str]:
    """Modules of `packages` a fresh interpreter has loaded after importing `modules`."""
    code = (
        f"import sys; import {modules}; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {packages!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout.strip()))


def test_the_api_process_does_not_load_torch() -> None:
    assert (
        loaded_after_import(
            "app.main, app.cli, app.dispatch.embedded, app.dispatch", ("torch", "worker")
        )
        == []
    )


def test_importing_the_celery_app_does_not_load_torch() -> None:
    """Importing the app (the API does, to name the task) loads no torch; a worker's parent
    imports the pipeline only when it starts (tests/worker/test_celery_app.py), and CUDA lives
    in its per-job children."""
    assert loaded_after_import("worker.celery_app, worker.tasks", ("torch",)) == []
