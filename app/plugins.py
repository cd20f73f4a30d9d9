"""Plug-in discovery: a package of plug-ins (upload checkers; the worker's methods, teacher
sources, learning tasks, augmentations, models, datasets, stages) has every module in it
imported, each of which registers itself, so a new plug-in is its file, with no import list to
keep. The registry names its plug-in package, and never imports it (no import circle)."""

import importlib
import pkgutil


def import_all(package: str) -> list[str]:
    """Import every module of `package` (its plug-ins register themselves); their names."""
    path = importlib.import_module(package).__path__
    names = sorted(info.name for info in pkgutil.iter_modules(path))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
