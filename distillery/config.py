"""Where the SDK finds the service and its key: arguments first, then the environment."""

import os
from dataclasses import dataclass
from importlib import metadata

import httpx

try:
    VERSION = metadata.version("distillery")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0"

URL_ENV = "DISTILLERY_URL"
API_KEY_ENV = "DISTILLERY_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    headers: dict[str, str]
    timeout: httpx.Timeout


def resolve(
    base_url: str | None, api_key: str | None, timeout: float | httpx.Timeout
) -> ClientConfig:
    """base_url: the argument, else DISTILLERY_URL, else the local default; api_key: the
    argument, else DISTILLERY_API_KEY, sent as a Bearer key (none: no Authorization header)."""
    url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    headers = {"User-Agent": f"distillery-python/{VERSION}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return ClientConfig(url, headers, httpx.Timeout(timeout))
