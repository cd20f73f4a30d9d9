"""What the poll routes (GET /v1/jobs, /v1/jobs/{id}, its events, metrics and artifacts) are
served with: less of FastAPI's per-request machinery than other routes.

Clients poll these far more often than they do anything else, and DESIGN §9 holds a status poll
to 0.75 x the speed of a bare endpoint reading the same row. Solving a tree of dependencies
costs more per request than everything else such a route does, so these routes take none:
`reader` gives them what DatabaseDep and TenantDep would (the same tenant check, 401s included),
and POLL_OPENAPI documents what those dependencies would have (the bearer scheme). Routes whose
only parameters are string path parameters and the request are served by PollRoute, which also
skips FastAPI's parameter handling; FastAPI documents them as usual.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.api.deps import bearer, key_of, tenant_for
from app.db_async import AsyncDatabase

POLL_OPENAPI: dict[str, Any] = {"security": [{bearer.scheme_name: []}]}


async def reader(request: Request) -> tuple[AsyncDatabase, str]:
    """(the async database, the tenant the request acts for), as get_tenant decides it."""
    state = request.app.state
    key = None if state.settings.auth == "off" else key_of(request, await bearer(request))
    return state.database, await tenant_for(state.settings, state.database, key)


class PollRoute(APIRoute):
    """Calls its endpoint with the request and the path parameters, as they are (strings), and
    returns the Response it makes: no dependency solving, validation or response model (which
    still documents the body)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        dependant = self.dependant
        others = (
            dependant.query_params,
            dependant.header_params,
            dependant.cookie_params,
            dependant.body_params,
            dependant.dependencies,
        )
        plain_path = all(p.field_info.annotation is str for p in dependant.path_params)
        if any(others) or not plain_path or dependant.request_param_name != "request":
            raise TypeError(
                f"{endpoint.__name__}: a PollRoute endpoint takes `request` and string path "
                "parameters only"
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handle
