"""Liveness and readiness."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import DispatcherDep, SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(session: SessionDep, dispatcher: DispatcherDep) -> JSONResponse:
    checks = {"database": False, "dispatch": False}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        pass
    checks["dispatch"] = dispatcher.ready()
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
