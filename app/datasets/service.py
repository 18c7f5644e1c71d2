"""Dataset service: accept uploads and references (their ingest job validates them), the
validation the job runs, list, get, delete. Flushes only."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from app.deletion import CancelJobs

from app.artifacts import Storage
from app.config import Settings
from app.datasets.ingest import Progress, archive_limits, archive_problem, open_and_validate
from app.datasets.schemas import DatasetRef
from app.db import new_id, on_rollback
from app.errors import ConflictError, InvalidError
from app.imagedata import ArchiveError, DatasetLayout, extract_archive
from app.imagedata.folders import skipped_files
from app.locations import check_location, check_root, save_stream
from app.models import Dataset
from app.ownership import get_owned
from app.pagination import page

#: Dataset statuses: `validating` until its ingest job ends, then `ready` or `failed`.
VALIDATING, READY, FAILED = "validating", "ready", "failed"


def upload_key(dataset_id: str) -> str:
    """Where an upload's archive (and manifest) wait for its ingest job."""
    return f"uploads/{dataset_id}"


def pending_fingerprint(dataset_id: str) -> str:
    """The fingerprint of a dataset whose content is not read yet (equal to no other)."""
    return f"pending:{dataset_id}"


def layout_values(layout: DatasetLayout) -> dict[str, Any]:
    """The columns a validated layout fills: class names, split sizes, fingerprint, skipped
    files and warnings."""
    return {
        "class_names": list(layout.class_names),
        "splits": {k: len(v) for k, v in layout.splits.items()},
        "fingerprint": layout.fingerprint,
        "skipped": list(layout.skipped),
        "warnings": list(layout.warnings),
    }


def _add(session: Session, row: Dataset, allow_duplicate: bool) -> Dataset:
    """Insert `row`; 409 when its name is taken or (another request's at the same moment)
    its fingerprint is (`uq_datasets_project_fingerprint`, unless `allow_duplicate`)."""
    row.duplicate_allowed = allow_duplicate
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        taken = select(Dataset.id).where(
            Dataset.project_id == row.project_id, Dataset.name == row.name
        )
        if session.execute(taken).first() is None:
            ensure_not_duplicate(session, row.project_id, row.fingerprint)
        raise ConflictError(
            f"a dataset named {row.name!r} already exists in this project"
        ) from None
    return row


def ensure_not_duplicate(
    session: Session, project_id: str, fingerprint: str, *, exclude: str | None = None
) -> None:
    """409 naming the project's dataset (other than `exclude`) with the same content
    fingerprint, if any."""
    query = select(Dataset.id, Dataset.name).where(
        Dataset.project_id == project_id,
        Dataset.fingerprint == fingerprint,
        Dataset.status != FAILED,
    )
    if exclude is not None:
        query = query.where(Dataset.id != exclude)
    same = session.execute(query.order_by(Dataset.id).limit(1)).first()
    if same is not None:
        raise ConflictError(
            f"dataset {same.name!r} ({same.id}) in this project has the same content"
            " (fingerprint); use it, or pass allow_duplicate=true to register a copy"
        )


def duplicates_of(session: Session, rows: list[Dataset]) -> dict[str, str]:
    """For each of `rows` registered with `allow_duplicate` (a copy), the id of another
    dataset of its project with the same content fingerprint, not failed: the one registered
    without `allow_duplicate` (the original) if there is one, else the oldest. Rows without
    one are left out."""
    copies = [r for r in rows if r.duplicate_allowed and r.status != FAILED]
    if not copies:
        return {}
    found = session.execute(
        select(Dataset.id, Dataset.project_id, Dataset.fingerprint, Dataset.duplicate_allowed)
        .where(
            Dataset.project_id.in_({r.project_id for r in copies}),
            Dataset.fingerprint.in_({r.fingerprint for r in copies}),
            Dataset.status != FAILED,
        )
        .order_by(Dataset.duplicate_allowed, Dataset.id)
    ).all()
    out = {}
    for row in copies:
        same = next(
            (f.id for f in found
             if (f.project_id, f.fingerprint) == (row.project_id, row.fingerprint)
             and f.id != row.id),
            None,
        )  # fmt: skip
        if same is not None:
            out[row.id] = same
    return out


def _free_name(
    session: Session, storage: Storage, project_id: str, name: str, use_broker: bool
) -> None:
    """409 if the name is taken; a dataset of that name that failed validation is replaced
    (deleted, with its stored files)."""
    query = select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name)
    row = session.scalar(query)
    if row is None:
        return
    if row.status == FAILED:
        from app.deletion import delete_dataset

        cancel = job_canceller(session, storage, project_id, use_broker)
        delete_dataset(session=session, storage=storage, row=row, cascade=True, cancel=cancel)
        return
    raise ConflictError(f"a dataset named {name!r} already exists in this project")


def _start_ingest(
    session: Session, settings: Settings, row: Dataset, allow_duplicate: bool
) -> Dataset:
    """Create the dataset's `ingest` job (CPU queue) in this transaction."""
    from app.jobs.service import create_job
    from app.jobs.types import IngestParams

    params = IngestParams(dataset_id=row.id, allow_duplicate=allow_duplicate)
    job, _ = create_job(
        session=session, project_id=row.project_id, params=params, idempotency_key=None,
        max_attempts=settings.max_attempts, use_broker=settings.uses_broker,
    )  # fmt: skip
    row.job_id = job.id
    session.flush()
    return row


MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")


def accept_upload(
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
    """Store an uploaded archive (and manifest) under `upload_key` and create the dataset
    `validating` with its `ingest` job; nothing is decoded here.

    Checks that need no reading of the content are answered now: the size limit (413), an
    empty file, the manifest's type and the name (422; 409 when taken). The rest (archive,
    images, manifest rows, a duplicate of the project's content) is the ingest job's.
    """
    manifest_ext = None
    if manifest is not None:
        manifest_ext = Path(manifest_name or "manifest.csv").suffix.lower()
        if manifest_ext not in MANIFEST_SUFFIXES:
            raise InvalidError("manifest must be a .csv or .parquet file")
    dataset_id = new_id("dst")
    work = Path(tempfile.mkdtemp(prefix="iimm-upload-", dir=_tmp_root(settings)))
    try:
        suffix = "".join(Path(filename or "upload.zip").suffixes[-2:]) or ".zip"
        upload = f"upload{suffix.lower()}"
        size = save_stream(archive, work / upload, settings.max_upload_bytes)
        if size == 0:
            raise InvalidError("the uploaded file is empty; send a zip, tar or tar.gz archive")
        if manifest is not None:
            save_stream(manifest, work / f"manifest{manifest_ext}", settings.max_json_bytes * 8)
        _free_name(session, storage, project_id, name, settings.uses_broker)
        key = upload_key(dataset_id)
        storage.put_dir(work, key)
        on_rollback(session, lambda: storage.delete(key))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fmt = (manifest_ext or ".archive").lstrip(".").replace("pq", "parquet")
    info = {
        "upload": {
            "archive": upload,
            "name_encoding": name_encoding,
            "manifest": f"manifest{manifest_ext}" if manifest_ext else None,
        }
    }
    row = Dataset(
        id=dataset_id, project_id=project_id, name=name, status=VALIDATING, format=fmt,
        source="upload", uri=f"datasets/{dataset_id}", class_names=[], splits={},
        fingerprint=pending_fingerprint(dataset_id), size_bytes=size, info=info,
    )  # fmt: skip
    return _start_ingest(session, settings, _add(session, row, allow_duplicate), allow_duplicate)


def _tmp_root(settings: Settings) -> str:
    path = settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def validate_upload(
    src: Path,
    data: Path,
    info: dict[str, Any],
    settings: Settings,
    name: str,
    progress: Progress | None = None,
) -> tuple[DatasetLayout, str]:
    """Extract, check and decode the upload stored in `src` (`info["upload"]` names its
    files) into `data`; (layout, its root relative to `data`). Errors are the `AppError`s
    of `open_and_validate`; `progress(done, total)` is called as images are decoded."""
    upload = info.get("upload") or {}
    archive, encoding = src / upload.get("archive", "upload.zip"), upload.get("name_encoding")
    if not upload.get("manifest"):
        layout = open_and_validate(
            archive, settings=settings, name=name, extract_dir=data, name_encoding=encoding,
            progress=progress,
        )  # fmt: skip
        return layout, os.path.relpath(layout.location, data)
    try:
        extract_archive(archive, data, limits=archive_limits(settings), name_encoding=encoding)
    except ArchiveError as exc:
        raise archive_problem(exc, settings, src, data) from None
    target = data / upload["manifest"]
    shutil.copyfile(src / upload["manifest"], target)
    layout = open_and_validate(target, settings=settings, name=name, progress=progress)
    used = {str(target)} | {str(data / str(i)) for s in layout.splits.values() for i in s.items}
    layout.skipped = skipped_files(data, used, manifest=True)
    return layout, target.name


def _check_torchvision(ref: DatasetRef, settings: Settings) -> None:
    """Name and root of a torchvision:// reference (the files are read by the workers)."""
    from app.imagedata import ImageDataError
    from app.imagedata.references import parse_torchvision_uri

    try:
        _, root = parse_torchvision_uri(ref.uri)
    except ImageDataError as exc:
        raise InvalidError(str(exc)) from None
    if not check_root(ref.uri, root, settings).is_dir():
        raise InvalidError(f"the root of {ref.uri} is not a directory on this machine")


def _check_uri(ref: DatasetRef, settings: Settings) -> Path | None:
    if urlparse(ref.uri).scheme == "torchvision":
        _check_torchvision(ref, settings)
        return None
    return check_location(ref.uri, settings, others=("torchvision",))


def register_uri(
    *,
    session: Session,
    storage: Storage,
    settings: Settings,
    project_id: str,
    ref: DatasetRef,
    allow_duplicate: bool = False,
) -> Dataset:
    """Record a reference the workers read in place and create the dataset `validating`
    with its `ingest` job, which opens (and, for folders and files, decodes) it.

    The URI's scheme, allowed root or host, a torchvision dataset's name and root, that a
    local path exists, and the name are checked now (403, 422, 409). Remote and torchvision
    references are fingerprinted by URI, so the same URI again is a 409 now unless
    `allow_duplicate`; a local one's content fingerprint is the ingest job's to compare."""
    path = _check_uri(ref, settings)
    if path is not None and not path.exists():
        raise InvalidError(f"{ref.uri} does not exist")
    _free_name(session, storage, project_id, ref.name, settings.uses_broker)
    dataset_id = new_id("dst")
    if path is None:
        uri, fingerprint, info = ref.uri, _uri_fp(ref.uri), {}
        if not allow_duplicate:
            ensure_not_duplicate(session, project_id, fingerprint)
    else:
        uri, fingerprint = path.as_uri(), pending_fingerprint(dataset_id)
        info = {"root": str(path)}
    row = Dataset(
        id=dataset_id, project_id=project_id, name=ref.name, status=VALIDATING,
        format=ref.format or _default_format(ref.uri), source="uri", uri=uri,
        class_names=ref.class_names or [], splits={}, fingerprint=fingerprint, size_bytes=0,
        info={**info, "format_given": ref.format is not None},
    )  # fmt: skip
    return _start_ingest(session, settings, _add(session, row, allow_duplicate), allow_duplicate)


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


def job_canceller(
    session: Session, storage: Storage, project_id: str, use_broker: bool
) -> CancelJobs:
    """What cancels the jobs of a cascade delete in this transaction (`app.deletion`)."""
    from app.jobs.service import cancel_jobs

    def cancel(job_ids: list[str], reason: str) -> None:
        cancel_jobs(session=session, project_id=project_id, job_ids=job_ids,
                    use_broker=use_broker, storage=storage, reason=reason)  # fmt: skip

    return cancel


def delete_dataset(
    *,
    session: Session,
    storage: Storage,
    project_id: str,
    dataset_id: str,
    cascade: bool = False,
    use_broker: bool = False,
) -> None:
    """Delete a dataset and its stored files (uploads only; a `validating` one's ingest job
    is cancelled); with results computed from it or jobs not final that name it, 409 unless
    `cascade`, which cancels those jobs (see `app.deletion`)."""
    from app.deletion import delete_dataset as delete

    row = get_dataset(session=session, project_id=project_id, dataset_id=dataset_id)
    if row.status == VALIDATING and row.job_id:
        from app.jobs.children import cancel_tree

        cancel_tree(session=session, job_id=row.job_id)  # its ingest job: nothing to validate
    cancel = job_canceller(session, storage, project_id, use_broker)
    delete(session=session, storage=storage, row=row, cascade=cascade, cancel=cancel)
