"""The thinnest honest endpoint for a status poll: a bare Starlette app that answers
GET /v1/jobs/{id} with the job's row as JSON, through psycopg's async pool and orjson. No
framework validation, no authentication, no middleware: what benchmarks/poll.py holds the API
against. The list, events and metrics of a job are answered the same way, from the same rows
the API reads, so each of the API's poll routes has its bare counterpart. Reads
BARE_DATABASE_URL (a libpq URL).

    uvicorn --app-dir benchmarks bare_endpoint:app --workers 2
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COLUMNS = (
    *("id", "name", "status", "stage", "progress", "attempt", "created_at", "started_at"),
    *("finished_at", "error", "spec", "metadata", "result"),
)
QUERY = f"SELECT {', '.join(COLUMNS)} FROM job WHERE id = %s"
LIST_COLUMNS = tuple(c for c in COLUMNS if c not in ("spec", "result"))
LIST = f"SELECT {', '.join(LIST_COLUMNS)} FROM job ORDER BY created_at DESC, id DESC LIMIT 20"
EVENTS = (
    "SELECT id, created_at, kind, message, data FROM job_event WHERE job_id = %s "
    "ORDER BY id LIMIT 100"
)
METRICS = 'SELECT stage, epoch, "values" FROM metric WHERE job_id = %s ORDER BY id'
EVENT_COLUMNS = ("id", "created_at", "kind", "message", "data")
METRIC_COLUMNS = ("stage", "epoch", "values")
OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

# Autocommit: a SELECT needs no transaction around it (no BEGIN / COMMIT round trips).
pool = AsyncConnectionPool(
    os.environ.get("BARE_DATABASE_URL", ""),
    min_size=4,
    max_size=10,
    kwargs={"autocommit": True},
    open=False,
)


async def rows(query: str, *params: str) -> list[tuple[object, ...]]:
    connection = await pool.getconn()
    try:
        cursor = await connection.execute(query, params)
        return await cursor.fetchall()
    finally:
        await pool.putconn(connection)


def listing(columns: tuple[str, ...], found: list[tuple[object, ...]]) -> Response:
    data = [dict(zip(columns, row, strict=True)) for row in found]
    return Response(orjson.dumps({"data": data}, option=OPTIONS), media_type="application/json")


async def get_job(request: Request) -> Response:
    found = await rows(QUERY, request.path_params["job_id"])
    if not found:
        return Response(b'{"error":{"code":"not_found"}}', 404, media_type="application/json")
    body = orjson.dumps(dict(zip(COLUMNS, found[0], strict=True)), option=OPTIONS)
    return Response(body, media_type="application/json")


async def list_jobs(_: Request) -> Response:
    return listing(LIST_COLUMNS, await rows(LIST))


async def list_events(request: Request) -> Response:
    return listing(EVENT_COLUMNS, await rows(EVENTS, request.path_params["job_id"]))


async def list_metrics(request: Request) -> Response:
    return listing(METRIC_COLUMNS, await rows(METRICS, request.path_params["job_id"]))


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    await pool.open()
    try:
        yield
    finally:
        await pool.close()


app = Starlette(
    routes=[
        Route("/v1/jobs", list_jobs),
        Route("/v1/jobs/{job_id}", get_job),
        Route("/v1/jobs/{job_id}/events", list_events),
        Route("/v1/jobs/{job_id}/metrics", list_metrics),
    ],
    lifespan=lifespan,
)
