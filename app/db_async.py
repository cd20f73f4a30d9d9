"""The API's async connection to the database, for the read path (status polls, lists, event
streams, API key look-ups).

PostgreSQL goes through psycopg's async driver on a small pool of autocommit connections (no
BEGIN / COMMIT round trips around a SELECT); SQLite through the standard driver in worker
threads. Both take the same SQL, written with `:name` parameters, and return rows as tuples;
JSON columns come back as their stored text, so a response can embed them without parsing.

A connection is held for one statement only, so nothing long-lived (an event stream) keeps one.
The database unreachable, or every connection busy for `wait_seconds`, raises
DatabaseUnavailable (answered 503).
"""

import asyncio
import re
import sqlite3
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

import anyio.to_thread
import psycopg
from psycopg.adapt import AdaptersMap, Loader
from sqlalchemy.engine import make_url

# Per API process: the sync engine keeps up to 30 more for writes, so two processes stay well
# under PostgreSQL's default of 100 connections.
MAX_CONNECTIONS = 10
WAIT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5

Params = Mapping[str, Any]
Row = tuple[Any, ...]


class DatabaseUnavailable(Exception):
    """The database could not be reached, or no connection came free in time."""


class AsyncDatabase(Protocol):
    async def fetch(self, sql: str, params: Params) -> list[Row]:
        """The rows of a SELECT."""

    async def execute(self, sql: str, params: Params) -> int:
        """Run a write; returns the rows it changed."""

    async def close(self) -> None:
        """Close every idle connection (busy ones close when their statement ends)."""


def open_database(url: str) -> "AsyncDatabase":
    """The async database for a SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...).
    Connections are opened on first use, in the event loop that uses them."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return SqliteDatabase(parsed.database or ":memory:")
    if parsed.get_backend_name() == "postgresql":
        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresDatabase(conninfo)
    raise ValueError(f"no async driver for {parsed.get_backend_name()!r} databases")


class _Slots:
    """At most `size` statements at once, first come first served; waiting longer than
    `wait_seconds` for a free slot is DatabaseUnavailable (the database is too slow or
    overloaded to answer in time). asyncio.Semaphore under asyncio.timeout() would do the same
    at several times the cost, paid by most polls under load."""

    def __init__(self, size: int, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self._free and not self._waiters:
            self._free -= 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.wait_seconds, self._expire, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot just as the caller gave up: pass it on
            raise
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(
                DatabaseUnavailable(f"no database connection came free in {self.wait_seconds:g}s")
            )

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the longest waiter
                return
        self._free += 1


# --- PostgreSQL -------------------------------------------------------------------------------


class _JsonText(Loader):
    """json / jsonb values as the text PostgreSQL sends, unparsed."""

    def load(self, data: Any) -> bytes:
        return bytes(data)


class _Adapters:
    """An adaptation context for psycopg.connect: the default adapters plus _JsonText."""

    def __init__(self) -> None:
        self.adapters = AdaptersMap(psycopg.adapters)
        self.connection = None
        for name in ("json", "jsonb"):
            self.adapters.register_loader(name, _JsonText)


@lru_cache
def _pyformat(sql: str) -> str:
    """:name parameters as psycopg's %(name)s."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


class _Statements:
    """fetch and execute, for a database that runs one statement with `_run`."""

    async def _run(self, sql: str, params: Params, *, fetch: bool) -> Any:
        raise NotImplementedError

    async def fetch(self, sql: str, params: Params) -> list[Row]:
        rows: list[Row] = await self._run(sql, params, fetch=True)
        return rows

    async def execute(self, sql: str, params: Params) -> int:
        changed: int = await self._run(sql, params, fetch=False)
        return changed


class PostgresDatabase(_Statements):
    def __init__(
        self,
        conninfo: str,
        max_connections: int = MAX_CONNECTIONS,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self._conninfo = conninfo
        self._slots = _Slots(max_connections, wait_seconds)
        self._idle: list[psycopg.AsyncConnection[Row]] = []
        self._context = _Adapters()
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()

    async def _connect(self) -> psycopg.AsyncConnection[Row]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                context=self._context,
            )
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def _run(self, sql: str, params: Params, *, fetch: bool) -> Any:
        query = _pyformat(sql)
        await self._slots.acquire()
        try:
            # An idle connection may have died with a server restart: that is only found out by
            # using it, so a statement that fails on one is tried once more on a new one.
            while True:
                reused = bool(self._idle)
                connection = self._idle.pop() if reused else await self._connect()
                try:
                    cursor = await connection.execute(query, params)
                    result = await cursor.fetchall() if fetch else cursor.rowcount
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    stale = reused and connection.broken
                    await connection.close()
                    if stale:
                        continue
                    raise DatabaseUnavailable(f"PostgreSQL: {exc}") from exc
                except BaseException:
                    self._give_back(connection)
                    raise
                self._give_back(connection)
                return result
        finally:
            self._slots.release()

    def _give_back(self, connection: psycopg.AsyncConnection[Row]) -> None:
        """Keep a connection that is idle and healthy; drop any other (a statement cancelled
        midway leaves its connection busy)."""
        healthy = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if healthy and not self._closed:
            self._idle.append(connection)
        else:
            # pgconn.finish() closes the socket without awaiting: this may run while the task
            # is being cancelled.
            connection.pgconn.finish()


# --- SQLite -----------------------------------------------------------------------------------


def _sqlite_param(value: Any) -> Any:
    # The text form SQLAlchemy stores, so timestamps compare as they do through the ORM.
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


class SqliteDatabase(_Statements):
    """Statements run in worker threads, each on a connection of its own (WAL lets them read
    while a writer commits)."""

    def __init__(
        self, path: str, max_connections: int = MAX_CONNECTIONS, wait_seconds: float = WAIT_SECONDS
    ) -> None:
        self._path = path
        self._slots = _Slots(max_connections, wait_seconds)
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        if self._path == ":memory:":
            target, uri = self._path, False
        else:
            # mode=rw: a missing database file is an error, not a new empty database.
            target, uri = f"file:{self._path}?mode=rw", True
        return sqlite3.connect(
            target, uri=uri, timeout=30, isolation_level=None, check_same_thread=False
        )

    def _statement(
        self, connection: sqlite3.Connection | None, sql: str, params: Params, fetch: bool
    ) -> tuple[sqlite3.Connection, Any]:
        connection = connection or self._connect()
        cursor = connection.execute(sql, {k: _sqlite_param(v) for k, v in params.items()})
        try:
            return connection, cursor.fetchall() if fetch else cursor.rowcount
        finally:
            cursor.close()

    async def _run(self, sql: str, params: Params, *, fetch: bool) -> Any:
        await self._slots.acquire()
        connection = self._idle.pop() if self._idle else None
        try:
            # Not abandoned on cancellation: the thread finishes and the connection comes back.
            used, result = await anyio.to_thread.run_sync(
                self._statement, connection, sql, params, fetch
            )
        except sqlite3.OperationalError as exc:
            if connection is not None:
                connection.close()
            raise DatabaseUnavailable(f"SQLite: {exc}") from exc
        except BaseException:
            if connection is not None:
                self._give_back(connection)
            raise
        finally:
            self._slots.release()
        self._give_back(used)
        return result

    def _give_back(self, connection: sqlite3.Connection) -> None:
        if self._closed:
            connection.close()
        else:
            self._idle.append(connection)
