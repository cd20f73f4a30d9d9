"""The one error shape every error response has: {"error": {"code", "message", "param"}}."""

from pydantic import BaseModel


class ErrorBody(BaseModel):
    code: str
    message: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
