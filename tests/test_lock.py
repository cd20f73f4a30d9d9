"""requirements.lock is what `make install` installs, and it matches pyproject.toml: every
dependency there (base and extras) is pinned in the lock with hashes, at a version its range
allows; the lock pins nothing as a direct dependency that pyproject no longer names; and the
environment the tests run in holds exactly the locked versions. After changing a dependency,
`make lock` then `make install` (README: Dependencies)."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "distillery"
# Installed by version after the lock, the build for the machine (constraints.txt).
BY_VERSION = {"torch"}


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        names.extend(extra)
    requirements = [Requirement(name) for name in names]
    return [r for r in requirements if canonicalize_name(r.name) != PROJECT]


def _lock() -> tuple[dict[str, str], dict[str, int], set[str]]:
    """(pinned versions, hashes per package, packages the lock says pyproject asked for)."""
    pins: dict[str, str] = {}
    hashes: dict[str, int] = {}
    direct: set[str] = set()
    current = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
        if pinned:
            current = canonicalize_name(pinned.group(1))
            pins[current] = pinned.group(2)
            hashes[current] = 0
        elif "--hash=sha256:" in line and current:
            hashes[current] += 1
        elif re.search(r"#\s+(via )?distillery \(pyproject\.toml\)", line) and current:
            direct.add(current)
    return pins, hashes, direct


def test_every_dependency_is_pinned_with_hashes_in_its_range() -> None:
    pins, hashes, _ = _lock()
    for requirement in _pyproject_requirements():
        name = canonicalize_name(requirement.name)
        if name in BY_VERSION:
            continue
        assert name in pins, f"{requirement} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(Version(pins[name]), prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {requirement}: "
            "run `make lock`"
        )
    assert all(count > 0 for count in hashes.values()), "every pin carries its hashes"


def test_the_lock_names_no_dependency_pyproject_dropped() -> None:
    _, _, direct = _lock()
    wanted = {canonicalize_name(r.name) for r in _pyproject_requirements()}
    assert direct - wanted == set(), "requirements.lock is older than pyproject.toml: `make lock`"
    assert wanted - BY_VERSION <= direct


def test_torch_is_pinned_by_version_within_pyprojects_range() -> None:
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    (line,) = [c for c in constraints if c.startswith("torch==")]
    pinned = Version(line.split("==", 1)[1])
    (torch,) = [r for r in _pyproject_requirements() if r.name == "torch"]
    assert torch.specifier.contains(pinned)
    assert Version(metadata.version("torch")).base_version == pinned.base_version


def test_the_environment_holds_the_locked_versions() -> None:
    """`make install` installed the lock (a venv from anything else fails here)."""
    pins, _, _ = _lock()
    wrong = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(installed) != Version(version):
            wrong[name] = (version, installed)
    assert wrong == {}, "installed versions differ from requirements.lock (locked, installed)"
