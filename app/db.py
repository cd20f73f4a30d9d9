"""Engine, session factory and the metadata naming convention; file locks beside a SQLite
database (its schema upgrade, a tenant's quota), where PostgreSQL has advisory locks."""

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    DateTime,
    MetaData,
    Result,
    Select,
    and_,
    create_engine,
    event,
    or_,
    text,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

from app.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits out a writer instead of
    # failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@lru_cache
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    # A database that does not answer fails a connection attempt in 10 s instead of hanging
    # the request, the maintenance loop or the worker (they retry or answer 503).
    settings = get_settings()
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        connect_args={"connect_timeout": 10},
    )


@lru_cache
def get_session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def relax_commit(session: Session) -> None:
    """Let this transaction's commit return before its WAL reaches the disk (PostgreSQL's
    `synchronous_commit = off`, for this transaction only). For writes that the next one
    supersedes (a job's progress, its lease's renewal, an epoch's curve point): a PostgreSQL
    crash may lose the last fraction of a second of them (3 x wal_writer_delay at most), never
    leave the database inconsistent, and a later durable commit makes them durable too (the
    WAL is flushed in order). Statuses, events, artifacts and results stay durable. (SQLite
    runs synchronous=NORMAL already.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def is_database_unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (down, restarting, its
    connections terminated, out of connections, or none free in this process's pool): worth
    retrying, unlike a bad statement."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # PoolTimeout: every connection this process may open is in use (its pool is smaller than
    # its threads' demand): as transient as a server out of connections.
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout))


def rows_changed(result: Result[Any]) -> int:
    """Rows an UPDATE changed (0: its condition no longer held)."""
    return int(cast(CursorResult[Any], result).rowcount)


def newest_first_page(
    session: Session, query: Select[Any], model: Any, cursor: Any, limit: int
) -> tuple[list[Any], bool]:
    """One page of `query` over `model` (a table with created_at and id), newest first, after
    the row `cursor` (the last row of the previous page, or None); and whether more follow."""
    if cursor is not None:
        query = query.where(
            or_(
                model.created_at < cursor.created_at,
                and_(model.created_at == cursor.created_at, model.id < cursor.id),
            )
        )
    ordered = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    rows = list(session.scalars(ordered))
    return rows[:limit], len(rows) > limit


def sqlite_lock_path(url: str | URL, name: str) -> Path | None:
    """The lock file `<database>.<name>.lock` beside a SQLite database file; None for another
    database, or a SQLite database in memory (one process: nothing to lock against)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(f"{database}.{name}.lock")


def acquire_file_lock(path: Path) -> int:
    """An exclusive flock on `path` (created if need be), waited for; close the descriptor it
    returns to release it. The kernel drops it with its process, so a crashed holder never
    leaves it behind."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold acquire_file_lock(path) for the block."""
    fd = acquire_file_lock(path)
    try:
        yield
    finally:
        os.close(fd)


def lock_sqlite_tenant(session: Session, tenant: str) -> None:
    """On a SQLite file, take the tenant's file lock until the session's transaction ends, so
    processes checking and then changing what the tenant holds take turns (PostgreSQL: an
    advisory lock, app.jobs.queue.lock_tenant). Call it before the transaction writes: a
    writer waiting for this lock would otherwise hold SQLite's."""
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    path = sqlite_lock_path(session.connection().engine.url, f"tenant-{digest}")
    if path is None:
        return
    # session.connection() began the session's transaction (SQLite's own begins at its first
    # write); the lock goes when that transaction ends, committed or rolled back.
    transaction = session.get_transaction()
    held = [acquire_file_lock(path)]

    def release(_: Session, ended: Any) -> None:
        if ended is transaction and held:
            os.close(held.pop())

    event.listen(session, "after_transaction_end", release)


def upgrade_database(url: str) -> None:
    """Bring the schema at `url` to the newest Alembic revision (idempotent)."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


class utc_now_plus(FunctionElement[datetime]):
    """The database server's UTC time plus a number of seconds, as a naive timestamp.

    Leases are set and compared with the database's clock, not each host's, so a worker on a
    machine whose clock drifts can neither lose its lease early nor keep a dead one alive.
    """

    type = DateTime()
    inherit_cache = True
    name = "utc_now_plus"


@compiles(utc_now_plus, "postgresql")
def _utc_now_plus_postgresql(element: utc_now_plus, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(now() AT TIME ZONE 'utc') + make_interval(secs => {seconds})"


@compiles(utc_now_plus, "sqlite")
def _utc_now_plus_sqlite(element: utc_now_plus, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    # The same text form SQLAlchemy stores: 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return (
        f"strftime('%Y-%m-%d %H:%M:%f000', 'now', printf('%+.3f seconds', CAST({seconds} AS REAL)))"
    )
