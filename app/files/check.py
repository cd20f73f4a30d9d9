"""`python -m app.files.check <file_id>`: check one upload, in a process of its own.

The FileChecker thread in the API runs this under a memory limit and a timeout, so a hostile
file (a zip bomb, a decompression bomb, a header claiming gigabytes) can at worst kill this
process, never the API. The memory limit is set first thing, before any upload byte is read.

On success the file becomes `ready` with `info` (rows, shapes, classes, ONNX signature, keys of
the prepared arrays); on a refusal it becomes `error` with a message naming what is wrong, and
its data is removed from the store.
"""

import errno
import logging
import resource
import sys

from app.settings import Settings
from distillery.types.protocol import EXIT_OUT_OF_MEMORY

log = logging.getLogger("app.files.check")


def limit_memory(max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def check_file(settings: Settings, file_id: str) -> None:
    """Check the file and record the outcome (does nothing unless it is `processing`)."""
    import shutil
    import tempfile
    from pathlib import Path

    from app.db import session_scope
    from app.files import formats, service
    from app.models import File, FileStatus
    from app.store import make_store
    from app.store.cache import DownloadCache

    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    with session_scope(settings.database_url) as session:
        row = session.get(File, file_id)
        if row is None or row.status != FileStatus.PROCESSING:
            return
        purpose, fmt_name, options, key = row.purpose, row.format, row.options, row.storage_key
        quota_left = settings.tenant_max_stored_bytes - service.stored_bytes(session, row.tenant)
    workdir = Path(tempfile.mkdtemp(prefix=f"check-{file_id}-", dir=store.staging_dir()))
    try:
        fmt = formats.get(purpose, fmt_name)
        context = formats.CheckContext(
            file_id=file_id,
            path=store.local_path(
                key, DownloadCache(settings.download_cache_root, settings.download_cache_bytes)
            ),
            options=dict(options or {}),
            settings=settings,
            workdir=workdir,
            max_prepared_bytes=quota_left,
        )
        error: str | None = None
        try:
            info = fmt.check(context)
        except MemoryError:
            raise
        except formats.CheckError as exc:
            error = str(exc)
        except Exception as exc:
            log.info("check of %s failed", file_id, exc_info=True)
            error = f"could not read the file as {fmt_name}: {type(exc).__name__}: {exc}"
        with session_scope(settings.database_url) as session:
            if error is not None:
                service.refuse(session, store, file_id, error)
                return
            prepared = 0
            for name, path in context.outputs.items():
                size, _ = store.put_file(context.key(name), path, move=True)
                prepared += size
            if not service.finish_ready(session, file_id, info, prepared) and (
                session.get(File, file_id) is None
            ):
                # Deleted while it was being checked: drop what was prepared.
                store.delete_prefix(f"files/{file_id}/")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m app.files.check <file_id>", file=sys.stderr)
        return 2
    settings = Settings()
    limit_memory(settings.file_check_memory_bytes)
    logging.basicConfig(level=settings.log_level)
    try:
        check_file(settings, argv[1])
    except MemoryError:
        print("MemoryError: the check ran out of memory", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    except (ImportError, OSError, SystemError) as exc:
        if not out_of_memory(exc):
            raise
        print(f"MemoryError: {exc}", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    return 0


def out_of_memory(exc: BaseException) -> bool:
    """An error that is the memory limit in disguise.

    A library that could not be mapped, or (on a fresh clone with no bytecode cached) the
    interpreter's compiler failing an allocation while it imports a module, which CPython reports
    as a SystemError "returned NULL without setting an exception".
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    text = str(exc)
    if isinstance(exc, SystemError):
        return "returned NULL without setting an exception" in text
    return "failed to map segment" in text or "Cannot allocate memory" in text


if __name__ == "__main__":
    sys.exit(main(sys.argv))
