"""`pip install distillery` is the SDK and the client CLI, without the server's or the worker's
dependencies: the wheel is built from this tree, installed into a fresh venv with only its base
dependencies (at the locked versions), and drives a live service (tests/distillery/conftest.py)."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.distillery.conftest import TINY_JOB, Server

pytestmark = pytest.mark.xdist_group("processes")

ROOT = Path(__file__).resolve().parents[2]
SERVER_AND_WORKER = ("torch", "fastapi", "sqlalchemy", "uvicorn", "celery", "numpy", "boto3")


def _pins() -> str:
    """The lock's versions, without hashes (a constraints file for the base install)."""
    lock = (ROOT / "requirements.lock").read_text()
    return "\n".join(re.findall(r"^([A-Za-z0-9_.\-]+==[^\s\\;]+)", lock, re.MULTILINE)) + "\n"


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    # A copy of what the wheel is built from: the build writes its own files beside the sources.
    source = folder / "source"
    for name in ("app", "worker", "distillery"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    dist = folder / "dist"
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("distillery-*.whl")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pins = folder / "pins.txt"
    pins.write_text(_pins())
    installed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-c", str(pins), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def _python(venv: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv / "bin" / "python", "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=venv,  # not the checkout: only what the wheel installed can be imported
    )


def test_the_wheel_brings_no_server_or_worker_dependency(client_venv: Path) -> None:
    found = _python(
        client_venv,
        """
        import importlib.util, json, sys
        names = json.loads(sys.argv[1])
        print(json.dumps([n for n in names if importlib.util.find_spec(n)]))
        """,
        json.dumps(SERVER_AND_WORKER),
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == []


@pytest.fixture(scope="module")
def wheel_job(client_venv: Path, server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A job the SDK from the wheel ran: what it printed (status, catalog kinds, paths, id)."""
    ran = _python(
        client_venv,
        """
        import json, sys
        import distillery
        from distillery import Client
        from distillery.types.catalog import KINDS

        url, key, spec, out = sys.argv[1:5]
        with Client(base_url=url, api_key=key) as client:
            kinds = {kind: [e.name for e in client.catalog.kind(kind)] for kind in KINDS}
            job = client.jobs.create(json.loads(spec))
            job = client.jobs.wait(job.id, timeout=600)
            path = client.jobs.download(job.id, "student.safetensors", out)
        print(json.dumps({"status": job.status, "kinds": kinds, "path": str(path),
                          "sdk": distillery.__file__, "id": job.id}))
        """,
        server.url,
        server.api_key,
        json.dumps({**TINY_JOB, "name": "wheel-sdk"}),
        str(tmp_path_factory.mktemp("wheel_download")),
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer: dict = json.loads(ran.stdout)
    return answer


def test_the_sdk_from_the_wheel_runs_a_job_on_a_live_service(
    client_venv: Path, wheel_job: dict
) -> None:
    answer = wheel_job
    assert answer["status"] == "succeeded"
    assert str(client_venv) in answer["sdk"]  # the installed wheel, not this checkout
    assert "lskd" in answer["kinds"]["methods"]
    sources = {"train", "weights", "onnx", "logits", "hf", "gguf"}
    assert set(answer["kinds"]["teacher_sources"]) == sources
    assert Path(answer["path"]).stat().st_size > 0


def test_the_client_cli_from_the_wheel(client_venv: Path, server: Server, wheel_job: dict) -> None:
    """`show` reads the SDK's job; the server's commands say what to install."""
    env = {"DISTILLERY_URL": server.url, "DISTILLERY_API_KEY": server.api_key, "PATH": "/usr/bin"}
    cli = client_venv / "bin" / "distillery"
    shown = subprocess.run(
        [cli, "show", wheel_job["id"], "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)
    assert (job["name"], job["status"]) == ("wheel-sdk", "succeeded")
    served = subprocess.run([cli, "serve"], capture_output=True, text=True, env=env, timeout=120)
    assert served.returncode == 2
    assert "pip install 'distillery[server]'" in served.stderr
