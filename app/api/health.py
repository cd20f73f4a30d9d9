"""Liveness, readiness and Prometheus metrics: no API key (probes and scrapers send none)."""

from functools import lru_cache

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.api.deps import DispatcherDep, SettingsDep
from app.api_error import ApiError
from app.db import get_engine
from app.metrics import exposition

router = APIRouter(tags=["health"])

# A probe or a scrape gives up on a database that does not answer after this many seconds
# (PostgreSQL; SQLite is a local file).
PROBE_TIMEOUT_SECONDS = 3


@lru_cache
def probe_engine(url: str) -> Engine:
    """An engine for checks: a fresh connection each time (it proves the database can be reached
    now, and a probe never waits behind the request pool), with bounded connect and statement
    time, so a database that is down or hung answers "not ready" within seconds."""
    if url.startswith("sqlite"):
        return get_engine(url)
    options = f"-c statement_timeout={PROBE_TIMEOUT_SECONDS * 1000}"
    return create_engine(
        url,
        poolclass=NullPool,
        connect_args={"connect_timeout": PROBE_TIMEOUT_SECONDS, "options": options},
    )


@lru_cache
def probe_sessions(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=probe_engine(url))


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(settings: SettingsDep, dispatcher: DispatcherDep) -> JSONResponse:
    """503 while the database or the dispatcher (broker, or embedded runner) is unavailable."""
    checks = {"database": False, "dispatch": False}
    try:
        with probe_engine(settings.database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        pass
    checks["dispatch"] = dispatcher.ready()
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(settings: SettingsDep) -> Response:
    """Prometheus text format; 404 with DISTILLERY_METRICS_ENABLED=false."""
    if not settings.metrics_enabled:
        raise ApiError(404, "not_found", "metrics are disabled (DISTILLERY_METRICS_ENABLED)")
    body = exposition(probe_sessions(settings.database_url), job_labels=settings.metrics_job_labels)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
