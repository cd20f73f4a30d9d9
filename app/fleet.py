"""The workers as they announce themselves, and whether one of them can run a job.

Each Celery worker (and the embedded runner, for its API's machine) writes a `worker` row when
it starts and every WORKER_ANNOUNCE_SECONDS: its device kind (cuda when nvidia-smi lists
NVIDIA GPUs, else cpu; DISTILLERY_WORKER_DEVICE overrides), its GPUs and their memory (or the
host's memory), and its queues; it removes the row when it stops. A job's `resources` are
checked against the workers seen in the last WORKER_SEEN_SECONDS: asking for a device kind,
GPU count or memory none of them has is a 422 naming the field, instead of a job queued for a
worker that does not exist. No torch here: a Celery parent must never touch CUDA before it
forks its job processes, and nvidia-smi does not.
"""

import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import create_engine, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.models import Worker, utcnow
from app.settings import Settings
from distillery.types.catalog import SpecError

log = logging.getLogger(__name__)

GIB = 1024**3


@dataclass(frozen=True)
class Capabilities:
    device: str  # "cpu" or "cuda"
    gpus: int = 0
    memory_bytes: int = 0  # each GPU's (the smallest) for cuda; the host's for cpu
    queues: list[str] = field(default_factory=list)


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _nvidia_gpus() -> list[int]:
    """The memory of each NVIDIA GPU this process may use (CUDA_VISIBLE_DEVICES narrows
    nvidia-smi's list by index), in bytes; [] without nvidia-smi or GPUs."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        log.warning("nvidia-smi failed; announcing no GPU", exc_info=True)
        return []
    memory = {}
    for line in out.strip().splitlines():
        index, mib = (part.strip() for part in line.split(","))
        memory[index] = int(float(mib)) * 1024**2
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [memory[i.strip()] for i in visible.split(",") if i.strip() in memory]
    return list(memory.values())


def detect(settings: Settings, queues: list[str]) -> Capabilities:
    """What this machine offers a job, as settings.worker_device says or as found."""
    gpus = [] if settings.worker_device == "cpu" else _nvidia_gpus()
    if settings.worker_device == "cuda" and not gpus:
        log.warning("DISTILLERY_WORKER_DEVICE=cuda, but nvidia-smi lists no GPU")
    if settings.worker_device == "cuda" or (settings.worker_device == "auto" and gpus):
        return Capabilities("cuda", len(gpus), min(gpus, default=0), queues)
    return Capabilities("cpu", 0, _host_memory(), queues)


def announce(session: Session, name: str, capabilities: Capabilities) -> None:
    row = session.get(Worker, name)
    if row is None:
        row = Worker(name=name)
        session.add(row)
    row.device = capabilities.device
    row.gpus = capabilities.gpus
    row.memory_bytes = capabilities.memory_bytes
    row.queues = list(capabilities.queues)
    row.seen_at = utcnow()
    session.commit()


def forget(session: Session, name: str) -> None:
    session.execute(delete(Worker).where(Worker.name == name))
    session.commit()


class Announcer:
    """Announces a worker now and every worker_announce_seconds from a thread, and forgets it
    on stop. Its database connections are not pooled: a Celery parent forks job processes,
    and a pooled connection would be shared with them."""

    def __init__(self, settings: Settings, name: str, capabilities: Capabilities) -> None:
        self.settings = settings
        self.name = name
        self.capabilities = capabilities
        self._engine: Engine = create_engine(settings.database_url, poolclass=NullPool)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="announcer", daemon=True)

    def _announce(self) -> None:
        with Session(self._engine) as session:
            announce(session, self.name, self.capabilities)

    def _run(self) -> None:
        while True:
            try:
                self._announce()
            except Exception:
                log.warning("could not announce worker %s; retrying", self.name, exc_info=True)
            if self._stop.wait(self.settings.worker_announce_seconds):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            with Session(self._engine) as session:
                forget(session, self.name)
        except Exception:
            log.warning("could not remove worker %s's announcement", self.name, exc_info=True)
        self._engine.dispose()


def check_resources(session: Session, resources: dict[str, Any], settings: Settings) -> None:
    """SpecError naming the field of `resources` no worker seen lately can meet (the device
    kind first, then the GPU count, then the memory); nothing for a job any worker may run."""
    device, gpus, memory_gb = resources["device"], resources["gpus"], resources["memory_gb"]
    gpus_field = "resources.gpus"
    if device == "cuda" and resources.get("processes", 1) > gpus:  # a GPU per process
        gpus, gpus_field = resources["processes"], "resources.processes"
    if device == "any" and not gpus and memory_gb is None:
        return
    since = utcnow() - timedelta(seconds=settings.worker_seen_seconds)
    workers = session.scalars(select(Worker).where(Worker.seen_at >= since)).all()
    seen = ", ".join(sorted(f"{w.name} ({_has(w)})" for w in workers)) or "none"
    recently = f"workers seen in the last {settings.worker_seen_seconds:g} s: {seen}"
    if gpus:
        device = "cuda" if device == "any" else device
    fit = [w for w in workers if device in ("any", w.device)]
    if not fit:
        raise SpecError("resources.device", f"no worker runs jobs on {device} ({recently})")
    fit = [w for w in fit if w.gpus >= gpus]
    if not fit:
        raise SpecError(gpus_field, f"no {device} worker has {gpus} GPUs ({recently})")
    if memory_gb is not None:
        fit = [w for w in fit if w.memory_bytes >= memory_gb * GIB]
        if not fit:
            raise SpecError(
                "resources.memory_gb",
                f"no {device} worker has {memory_gb:g} GB of memory ({recently})",
            )


def _has(worker: Worker) -> str:
    memory = f"{worker.memory_bytes / GIB:.0f} GB"
    if worker.device == "cuda":
        return f"cuda, {worker.gpus} GPUs of {memory}"
    return f"cpu, {memory}"
