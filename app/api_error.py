"""ApiError: an error the API answers with its status, code, message and the parameter at
fault (app/errors.py renders it; raised by the routes and the upload reader, with no FastAPI
import, so code below the routes can raise it)."""


class ApiError(Exception):
    """Answered as {"error": {"code", "message", "param"}} with `status` and `headers`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.headers = headers
