"""API keys: creation, hashing, lookup, and the first admin key of a new database."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import new_id
from app.models import ApiKey, Project

DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class Principal:
    """The caller: its project and whether its key is an admin key."""

    project_id: str
    project_name: str
    is_admin: bool


def hash_key(key: str) -> str:
    """SHA-256 of a key (keys are random 256-bit secrets, so a fast hash is safe)."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random API key."""
    return f"iimm_{secrets.token_urlsafe(32)}"


def get_or_create_project(*, session: Session, name: str) -> Project:
    """The project called `name`, created if absent."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(id=new_id("prj"), name=name)
        session.add(project)
        session.flush()
    return project


def create_key(
    *, session: Session, project_name: str, key: str | None = None, is_admin: bool = False
) -> str:
    """Store a (new or given) key for `project_name`; returns the plain key, shown once."""
    project = get_or_create_project(session=session, name=project_name)
    key = key or generate_key()
    session.add(
        ApiKey(
            id=new_id("key"),
            project_id=project.id,
            key_hash=hash_key(key),
            prefix=key[:12],
            is_admin=is_admin,
        )
    )
    session.flush()
    return key


_AUTHENTICATE = (
    select(ApiKey.key_hash, ApiKey.project_id, Project.name, ApiKey.is_admin)
    .join(Project, Project.id == ApiKey.project_id)
    .where(ApiKey.key_hash == bindparam("digest"), ApiKey.revoked_at.is_(None))
)


def authenticate(*, session: Session, digest: str) -> Principal | None:
    """The principal owning the key whose `hash_key` is `digest`; None if unknown or revoked."""
    row = session.execute(_AUTHENTICATE, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Principal(project_id=row.project_id, project_name=row.name, is_admin=row.is_admin)


class PrincipalCache:
    """Key hash → principal for `ttl_s` seconds (0: no caching); thread-safe.

    The bound on revocation: a key revoked (or deleted) in the database stops working in an
    API process at most `ttl_s` seconds after that process last looked it up. Unknown keys
    are never cached. `clock` (seconds, monotonic) is injectable for tests.
    """

    def __init__(
        self, ttl_s: float, *, maxsize: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._cache: TTLCache[str, Principal] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl_s, timer=clock) if ttl_s > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        """The cached principal of `digest`, or None (never cached or expired)."""
        if self._cache is None:
            return None
        with self._lock:
            return self._cache.get(digest)

    def put(self, digest: str, principal: Principal) -> None:
        """Remember `principal` for `digest` for `ttl_s` seconds."""
        if self._cache is not None:
            with self._lock:
                self._cache[digest] = principal


def ensure_bootstrap_key(*, session: Session, settings: Settings) -> str | None:
    """On a database without keys, create the first admin key; returns it if generated.

    `IIMM_BOOTSTRAP_API_KEY` wins; otherwise embedded mode writes a generated key to
    `<data dir>/admin.key` (mode 0600), which the CLI reads.
    """
    if session.scalar(select(func.count()).select_from(ApiKey)):
        return None
    if settings.bootstrap_api_key is not None:
        key = settings.bootstrap_api_key.get_secret_value()
        create_key(session=session, project_name=DEFAULT_PROJECT, key=key, is_admin=True)
        return None
    if settings.mode != "embedded":
        return None
    key = create_key(session=session, project_name=DEFAULT_PROJECT, is_admin=True)
    path = settings.admin_key_path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
