"""Which failures are the infrastructure's, not the job's: they requeue the job (bounded by
max_attempts) instead of failing it, since another attempt, maybe on another worker, can pass."""

import errno

from app.db import is_database_unreachable

# A disk full, read-only, unwritable or failing; descriptors or memory exhausted.
INFRASTRUCTURE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EIO,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EMFILE,
    errno.ENFILE,
}


def is_infrastructure_error(exc: BaseException) -> bool:
    if is_database_unreachable(exc):
        return True
    if isinstance(exc, OSError) and exc.errno in INFRASTRUCTURE_ERRNOS:
        return True
    try:
        from botocore.exceptions import ConnectionError as StoreConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    return isinstance(exc, (StoreConnectionError, HTTPClientError))


def infrastructure_message(exc: BaseException) -> str:
    """What the job's events say about it: the kind of failure, never a server path."""
    if is_database_unreachable(exc):
        return "the database was unreachable"
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "the worker's disk is full"
        code = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"the worker could not use its disk ({code}: {exc.strerror})"
    return f"the artifact store was unreachable ({type(exc).__name__})"
