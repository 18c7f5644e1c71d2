"""Dataset service: atomic ingest of uploads, URI references, list, get, delete. Flushes only."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.artifacts import Storage
from app.config import Settings
from app.datasets.ingest import archive_limits, open_and_validate, user_message
from app.datasets.schemas import DatasetRef
from app.db import new_id, on_rollback
from app.errors import ConflictError, ForbiddenError, InvalidError, TooLargeError
from app.imagedata import ArchiveError, DatasetLayout, extract_archive
from app.imagedata.folders import skipped_files
from app.models import Dataset
from app.ownership import get_owned
from app.pagination import page

_CHUNK = 1 << 20


def save_stream(src: BinaryIO, dest: Path, max_bytes: int) -> int:
    """Copy an upload to `dest`, refusing more than `max_bytes`."""
    total = 0
    with dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise TooLargeError(f"upload is larger than the limit of {max_bytes} bytes")
            out.write(chunk)
    return total


def _row(project_id: str, name: str, layout: DatasetLayout, **kw: object) -> Dataset:
    return Dataset(
        id=kw.pop("id", None) or new_id("dst"),
        project_id=project_id,
        name=name,
        status="ready",
        class_names=list(layout.class_names),
        splits={k: len(v) for k, v in layout.splits.items()},
        fingerprint=layout.fingerprint,
        skipped=list(layout.skipped),
        warnings=list(layout.warnings),
        **kw,
    )


def _add(session: Session, row: Dataset, allow_duplicate: bool = False) -> Dataset:
    if not allow_duplicate:
        _ensure_not_duplicate(session, row.project_id, row.fingerprint)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise ConflictError(
            f"a dataset named {row.name!r} already exists in this project"
        ) from None
    return row


def _ensure_not_duplicate(session: Session, project_id: str, fingerprint: str) -> None:
    """409 naming the project's dataset with the same content fingerprint, if any."""
    query = select(Dataset.id, Dataset.name).where(
        Dataset.project_id == project_id, Dataset.fingerprint == fingerprint
    )
    same = session.execute(query.limit(1)).first()
    if same is not None:
        raise ConflictError(
            f"dataset {same.name!r} ({same.id}) in this project has the same content"
            " (fingerprint); use it, or pass allow_duplicate=true to register a copy"
        )


def _ensure_name_free(session: Session, project_id: str, name: str) -> None:
    query = select(Dataset.id).where(Dataset.project_id == project_id, Dataset.name == name)
    if session.scalar(query) is not None:
        raise ConflictError(f"a dataset named {name!r} already exists in this project")


def ingest_upload(
    *,
    session: Session,
    storage: Storage,
    settings: Settings,
    project_id: str,
    name: str,
    archive: BinaryIO,
    filename: str,
    manifest: BinaryIO | None = None,
    manifest_name: str | None = None,
    name_encoding: str | None = None,
    allow_duplicate: bool = False,
) -> Dataset:
    """Store an uploaded archive (optionally with a manifest); nothing is left on failure.

    `name_encoding` decodes archive member names that declare no encoding (default: guessed).
    Content equal to a dataset of the project (same fingerprint) is a 409 naming it unless
    `allow_duplicate`.
    """
    dataset_id = new_id("dst")
    work = Path(tempfile.mkdtemp(prefix="iimm-upload-", dir=_tmp_root(settings)))
    try:
        suffix = "".join(Path(filename or "upload.zip").suffixes[-2:]) or ".zip"
        upload = work / f"upload{suffix.lower()}"
        size = save_stream(archive, upload, settings.max_upload_bytes)
        opts = _UploadOptions(manifest, manifest_name, name, name_encoding)
        layout, root_rel, fmt = _open_upload(work, upload, opts, settings)
        os.unlink(upload)
        _ensure_name_free(session, project_id, name)  # after the slow part: short transaction
        if not allow_duplicate:
            _ensure_not_duplicate(session, project_id, layout.fingerprint)
        key = f"datasets/{dataset_id}"
        storage.put_dir(work / "data", key)
        on_rollback(session, lambda: storage.delete(key))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = {"root": root_rel, "kind": layout.kind, "derived_splits": dict(layout.derived)}
    row = _row(project_id, name, layout, id=dataset_id, format=fmt, source="upload", uri=key,
               size_bytes=size, info=info)  # fmt: skip
    return _add(session, row, allow_duplicate=True)  # checked above, before storing


def _tmp_root(settings: Settings) -> str:
    path = settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@dataclass(frozen=True)
class _UploadOptions:
    manifest: BinaryIO | None
    manifest_name: str | None
    name: str
    name_encoding: str | None


def _open_upload(
    work: Path, upload: Path, opts: _UploadOptions, settings: Settings
) -> tuple[DatasetLayout, str, str]:
    data = work / "data"
    if opts.manifest is None:
        layout = open_and_validate(
            upload, settings=settings, name=opts.name, extract_dir=data,
            name_encoding=opts.name_encoding,
        )  # fmt: skip
        return layout, os.path.relpath(layout.location, data), "archive"
    try:
        limits = archive_limits(settings)
        extract_archive(upload, data, limits=limits, name_encoding=opts.name_encoding)
    except ArchiveError as exc:
        raise InvalidError(f"archive rejected: {user_message(exc, work)}") from None
    ext = Path(opts.manifest_name or "manifest.csv").suffix.lower()
    if ext not in (".csv", ".parquet", ".pq"):
        raise InvalidError("manifest must be a .csv or .parquet file")
    target = data / f"manifest{ext}"
    save_stream(opts.manifest, target, settings.max_json_bytes * 8)
    layout = open_and_validate(target, settings=settings, name=opts.name)
    used = {str(target)} | {str(data / str(i)) for s in layout.splits.values() for i in s.items}
    layout.skipped = skipped_files(data, used, manifest=True)
    return layout, target.name, ext.lstrip(".").replace("pq", "parquet")


def _check_root(uri: str, path: Path, settings: Settings) -> Path:
    path = path.resolve()
    roots = [Path(r).resolve() for r in settings.allowed_roots]
    if not any(path == r or r in path.parents for r in roots):
        raise ForbiddenError(
            f"{uri} is not under an allowed root; allowed roots (IIMM_ALLOWED_ROOTS): "
            f"{settings.allowed_roots or 'none configured'}"
        )
    return path


def _check_torchvision(ref: DatasetRef, settings: Settings) -> None:
    """Name and root of a torchvision:// reference (the files are read by the workers)."""
    from app.imagedata import ImageDataError
    from app.imagedata.references import parse_torchvision_uri

    try:
        _, root = parse_torchvision_uri(ref.uri)
    except ImageDataError as exc:
        raise InvalidError(str(exc)) from None
    if not _check_root(ref.uri, root, settings).is_dir():
        raise InvalidError(f"the root of {ref.uri} is not a directory on this machine")


REMOTE_SCHEMES = ("s3", "gs", "https")


def check_location(uri: str, settings: Settings, *, others: tuple[str, ...] = ()) -> Path | None:
    """The resolved local path of a ``file://`` URI under `IIMM_ALLOWED_ROOTS`, or None for an
    ``s3://``, ``gs://`` or ``https://`` URI whose host `IIMM_ALLOWED_HOSTS` allows. 403 naming
    the allowed roots or hosts; 422 for another scheme (`others` are named as also accepted)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return _check_root(uri, Path(parsed.path), settings)
    if parsed.scheme in REMOTE_SCHEMES:
        if parsed.hostname not in settings.allowed_hosts:
            raise ForbiddenError(
                f"host {parsed.hostname!r} is not allowed; allowed hosts (IIMM_ALLOWED_HOSTS): "
                f"{settings.allowed_hosts or 'none configured'}"
            )
        return None
    schemes = ", ".join(f"{s}://" for s in ("file", *others, *REMOTE_SCHEMES))
    raise InvalidError(f"unsupported URI scheme {parsed.scheme!r}; use {schemes}")


def _check_uri(ref: DatasetRef, settings: Settings) -> Path | None:
    if urlparse(ref.uri).scheme == "torchvision":
        _check_torchvision(ref, settings)
        return None
    return check_location(ref.uri, settings, others=("torchvision",))


def register_uri(
    *,
    session: Session,
    settings: Settings,
    project_id: str,
    ref: DatasetRef,
    allow_duplicate: bool = False,
) -> Dataset:
    """Register data the workers read in place (validated now when it is local); the same
    content (or URI) as a dataset of the project is a 409 unless `allow_duplicate`."""
    path = _check_uri(ref, settings)
    if path is None:
        row = Dataset(
            id=new_id("dst"), project_id=project_id, name=ref.name, status="registered",
            format=ref.format or _default_format(ref.uri), source="uri", uri=ref.uri,
            class_names=ref.class_names or [], splits={}, fingerprint=_uri_fp(ref.uri), info={},
        )  # fmt: skip
        return _add(session, row, allow_duplicate)
    if not path.exists():
        raise InvalidError(f"{ref.uri} does not exist")
    layout = open_and_validate(path, settings=settings, name=ref.name, class_names=ref.class_names)
    _ensure_name_free(session, project_id, ref.name)
    fmt = ref.format or layout.kind
    row = _row(project_id, ref.name, layout, format=fmt, source="uri", uri=path.as_uri(),
               size_bytes=0, info={"root": str(path), "kind": layout.kind})  # fmt: skip
    return _add(session, row, allow_duplicate)


def _default_format(uri: str) -> str:
    return "torchvision" if uri.startswith("torchvision:") else "folder"


def _uri_fp(uri: str) -> str:
    import hashlib

    return "uri-" + hashlib.sha256(uri.encode()).hexdigest()


def get_dataset(*, session: Session, project_id: str, dataset_id: str) -> Dataset:
    """The caller's dataset (404 for other projects' ids)."""
    return get_owned(session, Dataset, dataset_id, project_id, "dataset")


def list_datasets(
    *, session: Session, project_id: str, cursor: str | None, limit: int
) -> tuple[list[Dataset], str | None]:
    """A page of the caller's datasets, newest first."""
    query = select(Dataset).where(Dataset.project_id == project_id)
    return page(session, query, Dataset.id, cursor, limit)


def delete_dataset(
    *, session: Session, storage: Storage, project_id: str, dataset_id: str, cascade: bool = False
) -> None:
    """Delete a dataset and its stored files (uploads only); with results computed from it,
    409 unless `cascade` (see `app.deletion`)."""
    from app.deletion import delete_dataset as delete

    row = get_dataset(session=session, project_id=project_id, dataset_id=dataset_id)
    delete(session=session, storage=storage, row=row, cascade=cascade)
