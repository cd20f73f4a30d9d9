"""The import contracts (pyproject's [tool.importlinter], run by `make test` as lint-imports)
cover the whole service: every top-level module and package of app/ sits in a layer, so a new
one cannot escape the layering by being left out of the list."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layered() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    names = set()
    for layer in layers:
        for part in layer.replace("|", ":").split(":"):
            names.add(part.strip())
    return names


def test_every_module_of_the_service_is_in_a_layer() -> None:
    app = ROOT / "app"
    modules = {f"app.{path.stem}" for path in app.glob("*.py") if path.stem != "__init__"} | {
        f"app.{path.name}" for path in app.iterdir() if (path / "__init__.py").exists()
    }
    assert modules - _layered() == set()
