"""The store: where uploads, exported students and reports are kept and served from.

A local folder by default (`DISTILLERY_ARTIFACT_URL=./artifacts`); `s3://bucket/prefix` for an
S3-compatible store. `make_store` picks one; app/store/base.py holds the Store protocol and the
keys, app/store/local.py and app/store/s3.py the two stores.
"""

from app.store.base import Store
from app.store.local import LocalStore


def make_store(url: str, s3_endpoint_url: str | None = None) -> Store:
    """The store the settings name: `s3://bucket/prefix` or a local folder."""
    if url.startswith("s3://"):
        from app.store.s3 import S3Store  # boto3: only when used

        return S3Store(url, endpoint_url=s3_endpoint_url)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"store {url!r}: use a local folder or s3://bucket/prefix")
    return LocalStore(url)
