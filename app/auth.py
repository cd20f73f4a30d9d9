"""API keys: create, list, revoke, and look up the tenant of a Bearer key.

A key is "dk_" + 43 url-safe characters, shown once when it is created. The database keeps only
its sha256 (looked up directly: the key has 256 bits of entropy, so its hash is as secret as it
is) and its first 8 characters, so `distillery keys list` can tell keys apart.
"""

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.db_async import AsyncDatabase
from app.models import ApiKey, utcnow

KEY_PREFIX = "dk_"
PREFIX_CHARS = 8
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# last_used_at is written at most this often per key, not on every request.
TOUCH_INTERVAL = timedelta(minutes=1)


class KeyNotFound(LookupError):
    pass


def check_tenant(name: str) -> str:
    """The tenant name, or ValueError: 1-100 characters of A-Z a-z 0-9 _ . -"""
    if not TENANT_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid tenant name {name!r}: use 1-100 characters of A-Z, a-z, 0-9, '_', '.', '-'"
        )
    return name


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def create_key(session: Session, tenant: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key for `tenant`; returns the row and the key itself (never stored)."""
    key = new_key()
    row = ApiKey(
        id=new_key_id(),
        tenant=check_tenant(tenant),
        name=name,
        prefix=key[:PREFIX_CHARS],
        key_hash=hash_key(key),
    )
    session.add(row)
    session.commit()
    return row, key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(session: Session, key_id: str) -> ApiKey:
    """Revoke a key (idempotent: revoking it again keeps the first revocation time)."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise KeyNotFound(key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


def _last_use_is_stale(last_used_at: datetime | str | None, now: datetime) -> bool:
    """Whether last_used_at is due to be written again (SQLite's driver gives its text)."""
    if isinstance(last_used_at, str):
        last_used_at = datetime.fromisoformat(last_used_at)
    return last_used_at is None or last_used_at < now - TOUCH_INTERVAL


def authenticate(session: Session, key: str) -> ApiKey | None:
    """The live key row for `key`, or None (unknown or revoked). Records the use at most once a
    minute per key, with a conditional UPDATE so concurrent requests write it once."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    stale = now - TOUCH_INTERVAL
    if _last_use_is_stale(row.last_used_at, now):
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == row.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale),
            )
            .values(last_used_at=now)
        )
        session.commit()
    return row


async def authenticate_async(database: AsyncDatabase, key: str) -> str | None:
    """authenticate() on the API's async database: the tenant of the live key `key`, or None.
    Read on every request, so a revoked key stops working at once."""
    if not key.startswith(KEY_PREFIX):
        return None
    rows = await database.fetch(
        "SELECT id, tenant, revoked_at, last_used_at FROM api_key WHERE key_hash = :hash",
        {"hash": hash_key(key)},
    )
    if not rows or rows[0][2] is not None:
        return None
    key_id, tenant, _, last_used_at = rows[0]
    now = utcnow()
    if _last_use_is_stale(last_used_at, now):
        await database.execute(
            "UPDATE api_key SET last_used_at = :now WHERE id = :id "
            "AND (last_used_at IS NULL OR last_used_at < :stale)",
            {"now": now, "id": key_id, "stale": now - TOUCH_INTERVAL},
        )
    return str(tenant)
