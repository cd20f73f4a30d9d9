"""create_app(): routers, middleware, error handlers, and the dispatcher's lifecycle."""

import gc
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app.api import catalog, dashboard, docs, files, health, jobs, session
from app.api.event_streams import EventStreams
from app.db import upgrade_database
from app.db_async import open_database
from app.dispatch import make_dispatcher
from app.dispatch.base import Dispatcher
from app.dispatch.maintenance import MaintenanceLoop
from app.errors import error_response, install_error_handlers
from app.files.checker import FileChecker
from app.files.upload import sweep_staging
from app.logs import configure_logging
from app.metrics import HttpMetrics
from app.settings import Settings, get_settings
from app.store import make_store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


UPLOAD_PATH = "/v1/files"


class BodyLimit:
    """Answer 413 to a request body over `max_bytes`, whether or not it states its length.

    Bodies are read here, before the route runs: JSON bodies are small (1 MiB by default), and
    FastAPI would turn an error raised mid-read into a 400.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH:
            # Uploads stream to disk under their own limit (DISTILLERY_MAX_UPLOAD_BYTES).
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        seen = 0
        while not too_large:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            too_large = seen > self.max_bytes
            if not message.get("more_body", False):
                break
        if too_large:
            response = error_response(
                413, "payload_too_large", f"request body exceeds {self.max_bytes} bytes"
            )
            await response(scope, receive, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniff:
    """Every answer says X-Content-Type-Options: nosniff (a browser must not guess that a JSON
    body or a downloaded artifact is HTML or a script)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                    headers.append(NOSNIFF)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_nosniff)


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    """The API. `dispatcher` defaults to what the settings select (Celery or embedded runner)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            upgrade_database(settings.database_url)
        active = dispatcher or make_dispatcher(settings)
        maintenance = MaintenanceLoop(settings, active)
        app.state.dispatcher = active
        file_checker = FileChecker(settings)
        app.state.file_checker = file_checker
        sweep_staging(app.state.store.staging_dir())
        # Opened here, in the loop that serves requests: the read path's connections and the
        # event streams' limits are per process.
        app.state.database = open_database(settings.database_url)
        app.state.event_streams = EventStreams(
            settings.max_event_streams, settings.event_stream_max_seconds
        )
        app.state.event_streams.watch_stop_signals()
        active.start()
        maintenance.start()
        file_checker.start()
        if threading.current_thread() is threading.main_thread():
            # A server process: what start-up made (modules, routes, settings) lives as long
            # as it does. Frozen out of the garbage collector, it is no longer walked by every
            # full collection, which held polls up for tens of milliseconds (p99 in
            # benchmarks/poll.py). Not under a test client: it runs many apps in one process.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            app.state.event_streams.close()
            await app.state.database.close()
            file_checker.stop()
            maintenance.stop()
            active.stop()

    app = FastAPI(
        title="Distillery",
        version="0.1.0",
        description="Knowledge distillation as a service.",
        lifespan=lifespan,
        docs_url=None,  # app/api/docs.py, when DISTILLERY_API_DOCS=true
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(NoSniff)
    # Outermost: times every request, including those refused above.
    app.add_middleware(HttpMetrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(files.router)
    app.include_router(catalog.router)
    app.include_router(session.router)
    app.include_router(dashboard.router)
    if settings.api_docs:
        app.include_router(docs.router)
    return app


configure_logging(get_settings())
app = create_app()
