"""A job's work folder in a remote store, so a job resumed on another host keeps its progress.

With an S3 store, each checkpoint and stage output the pipeline writes to its work folder
(`<work_root>/jobs/<job_id>/`) is also pushed to `jobs/<job_id>/work/<name>`; a worker that picks
the job up again pulls what it lacks before it starts; once the job has ended for good they are
removed (`clear`). With a local store, workers share the work folder itself, and these
functions do nothing.
"""

import os
import secrets
from collections.abc import Collection
from pathlib import Path

from app.store.base import Store, job_work_prefix


def work_prefix(job_id: str) -> str:
    return job_work_prefix(job_id)


def push(store: Store, job_id: str, path: Path) -> str | None:
    """Upload one work file (a checkpoint or a stage output); returns its key, or None when
    the store is local."""
    if not store.remote:
        return None
    key = work_prefix(job_id) + path.name
    store.put_file(key, path)
    return key


def pull(
    store: Store, job_id: str, workdir: Path, names: Collection[str] | None = None
) -> list[Path]:
    """Download every work file of the job that `workdir` lacks (only those in `names`, when
    given); returns the files written.

    A file already present is kept as it is: it is this host's own, at least as recent."""
    if not store.remote:
        return []
    prefix = work_prefix(job_id)
    pulled: list[Path] = []
    for key in store.list_keys(prefix):
        name = key.removeprefix(prefix)
        if not name or "/" in name or name in (".", ".."):
            continue  # push writes flat names only
        if names is not None and name not in names:
            continue
        target = workdir / name
        if target.exists():
            continue
        workdir.mkdir(parents=True, exist_ok=True)
        partial = workdir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        try:
            with partial.open("wb") as f:
                for chunk in store.open_chunks(key):
                    f.write(chunk)
            os.replace(partial, target)  # whole or not at all, like a checkpoint
        finally:
            partial.unlink(missing_ok=True)
        pulled.append(target)
    return pulled


def clear(store: Store, job_id: str) -> None:
    """Remove the job's work files from a remote store (the job has reached a final status)."""
    if not store.remote:
        return
    store.delete_prefix(work_prefix(job_id))
