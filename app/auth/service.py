"""API keys: creation, hashing, lookup, and the first admin key of a new database."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
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


def authenticate(*, session: Session, key: str) -> Principal | None:
    """The principal owning `key`, or None if it is unknown or revoked."""
    digest = hash_key(key)
    row = session.execute(
        select(ApiKey, Project.name)
        .join(Project, Project.id == ApiKey.project_id)
        .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row[0].key_hash, digest):
        return None
    return Principal(project_id=row[0].project_id, project_name=row[1], is_admin=row[0].is_admin)


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
