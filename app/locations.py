"""Where uploads are written and which locations the service may read: the allowed roots
(`IIMM_ALLOWED_ROOTS`) and hosts (`IIMM_ALLOWED_HOSTS`). Used by datasets and models alike."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from app.config import Settings
from app.errors import ForbiddenError, InvalidError, TooLargeError

_CHUNK = 1 << 20


def save_stream(
    src: BinaryIO, dest: Path, max_bytes: int, setting: str = "IIMM_MAX_UPLOAD_BYTES"
) -> int:
    """Copy an upload to `dest`; its size in bytes. 413 past `max_bytes`, naming `setting`,
    the configuration that sets that bound."""
    total = 0
    with dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise TooLargeError(
                    f"upload is larger than the limit of {max_bytes} bytes ({setting})"
                )
            out.write(chunk)
    return total


def check_root(uri: str, path: Path, settings: Settings) -> Path:
    """`path` resolved, or 403 naming the allowed roots unless it is under one of them."""
    path = path.resolve()
    roots = [Path(r).resolve() for r in settings.allowed_roots]
    if not any(path == r or r in path.parents for r in roots):
        raise ForbiddenError(
            f"{uri} is not under an allowed root; allowed roots (IIMM_ALLOWED_ROOTS): "
            f"{settings.allowed_roots or 'none configured'}"
        )
    return path


REMOTE_SCHEMES = ("s3", "gs", "https")


def check_location(uri: str, settings: Settings, *, others: tuple[str, ...] = ()) -> Path | None:
    """The resolved local path of a ``file://`` URI under `IIMM_ALLOWED_ROOTS`, or None for an
    ``s3://``, ``gs://`` or ``https://`` URI whose host `IIMM_ALLOWED_HOSTS` allows. 403 naming
    the allowed roots or hosts; 422 for another scheme (`others` are named as also accepted)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return check_root(uri, Path(parsed.path), settings)
    if parsed.scheme in REMOTE_SCHEMES:
        if parsed.hostname not in settings.allowed_hosts:
            raise ForbiddenError(
                f"host {parsed.hostname!r} is not allowed; allowed hosts (IIMM_ALLOWED_HOSTS): "
                f"{settings.allowed_hosts or 'none configured'}"
            )
        return None
    schemes = ", ".join(f"{s}://" for s in ("file", *others, *REMOTE_SCHEMES))
    raise InvalidError(f"unsupported URI scheme {parsed.scheme!r}; use {schemes}")
