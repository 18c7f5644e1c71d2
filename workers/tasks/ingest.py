"""The internal `ingest` job: extract, check and decode a dataset, off the API process.

An upload's files wait under `uploads/<dataset id>` (`app.datasets.service.accept_upload`);
this job validates them exactly as the API once did (`validate_upload`, `open_and_validate`),
stores the extracted files under `datasets/<dataset id>` and, in the transaction that marks
it succeeded, fills the dataset (classes, splits, fingerprint, skipped files, warnings) and
makes it `ready`. A problem the user must fix (422, 413, 409 for a duplicate) makes the
dataset `failed` with that problem as its `error`, and the job failed with its detail; the
stored files are removed either way (`uploads/...` after success, everything on failure).
References (`file://`, `torchvision://`, remote) are opened the same way where they live.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.ingest import scrub_paths
from app.datasets.service import upload_key
from app.db import after_commit, session_scope
from app.deletion import INGEST_WORK_PREFIX
from app.errors import AppError, ConflictError, InvalidError
from app.jobs.types import IngestParams
from app.models import Dataset
from app.workdirs import make_owned_dir, sweep_owned_dirs
from workers.tasks.base import JobContext, JobError, Outcome

VALIDATING, READY, FAILED = "validating", "ready", "failed"
_COLUMNS = ("id", "project_id", "name", "status", "source", "uri", "format", "class_names",
            "info", "fingerprint", "error")  # fmt: skip


def _row(ctx: JobContext, dataset_id: str) -> dict[str, Any]:
    with session_scope(ctx.sessions) as session:
        row = session.scalar(
            select(Dataset).where(Dataset.id == dataset_id, Dataset.project_id == ctx.project_id)
        )
        if row is None:
            raise JobError(f"dataset {dataset_id} was deleted before it was validated")
        return {c: getattr(row, c) for c in _COLUMNS}


def run_ingest(ctx: JobContext) -> Outcome:
    """Validate the dataset of `ctx.params` (see the module docstring)."""
    p = IngestParams.model_validate({"type": "ingest", **ctx.params})
    row = _row(ctx, p.dataset_id)
    if row["status"] == FAILED:  # an earlier attempt recorded it, then lost the job
        raise JobError((row["error"] or {}).get("detail") or "the dataset failed validation")
    if row["status"] != VALIDATING:
        raise JobError(f"dataset {p.dataset_id} is {row['status']}, not validating")
    ctx.progress(0.0, "validating")
    # `<data dir>/tmp/iimm-ingest-<owner>-<job id>.<attempt>-*` (`app.workdirs`): a killed
    # worker's is swept at a worker's start and by the maintenance pass
    work = make_owned_dir(_tmp_root(ctx), INGEST_WORK_PREFIX, job=(ctx.job_id, ctx.attempt))
    stored: list[str] = []
    try:
        values = _validate(ctx, row, work, stored)
        fingerprint = values.get("fingerprint") or row["fingerprint"]
        if not fingerprint.startswith("uri-"):  # a URI's was recorded (and checked) at once
            if not p.allow_duplicate:
                with session_scope(ctx.sessions) as session:
                    _not_duplicate(session, row, fingerprint)
            _claim_content(ctx, row, fingerprint)
    except AppError as exc:
        for key in stored:
            ctx.storage.delete(key)
        # a safety net: no folder of this machine leaves the worker in a message
        exc.detail = scrub_paths(exc.detail, work / "data", work, ctx.settings.data_dir)
        _fail(ctx, row, exc)
        raise JobError(exc.detail) from None
    except BaseException:
        for key in stored:  # a retry stores them again
            ctx.storage.delete(key)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if row["source"] == "upload" and not ctx.storage.is_local:  # the downloaded copy
            ctx.storage.cache.discard(upload_key(row["id"]))
    return _outcome(ctx, row, values, stored)


def _outcome(
    ctx: JobContext, row: dict[str, Any], values: dict[str, Any], stored: list[str]
) -> Outcome:
    dataset_id = row["id"]

    def write(session: Session) -> None:
        done = session.execute(
            update(Dataset)
            .where(Dataset.id == dataset_id, Dataset.status == VALIDATING)
            .values(status=READY, error=None, **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]  # deleted meanwhile
            after_commit(session, lambda: [ctx.storage.delete(k) for k in stored])

    def cleanup() -> None:
        if row["source"] == "upload":
            ctx.storage.delete(upload_key(dataset_id))

    result = {
        "dataset_id": dataset_id, "dataset_name": row["name"],
        "class_names": values["class_names"], "splits": values["splits"],
    }  # fmt: skip
    return Outcome(result, write=write, after_commit=cleanup)


def _not_duplicate(session: Session, row: dict[str, Any], fingerprint: str) -> None:
    from app.datasets.service import ensure_not_duplicate

    ensure_not_duplicate(session, row["project_id"], fingerprint, exclude=row["id"])


def _claim_content(ctx: JobContext, row: dict[str, Any], fingerprint: str) -> None:
    """Record the fingerprint on the dataset while it is still `validating`: the project's
    partial unique index (`uq_datasets_project_fingerprint`) then refuses the same content
    to any other ingest, also one that passed `_not_duplicate` at the same moment, which
    gets the same 409 naming this dataset. A copy registered with `allow_duplicate` is not
    covered by the index. A retry of this job records the same value again."""
    for _ in range(3):  # the other dataset may be deleted before we can name it
        try:
            with session_scope(ctx.sessions) as session:
                session.execute(
                    update(Dataset)
                    .where(Dataset.id == row["id"], Dataset.status == VALIDATING)
                    .values(fingerprint=fingerprint)
                    .execution_options(synchronize_session=False)
                )
            return
        except IntegrityError:
            with session_scope(ctx.sessions) as session:
                _not_duplicate(session, row, fingerprint)
    raise ConflictError("another dataset of this project with the same content is being added")


def _fail(ctx: JobContext, row: dict[str, Any], exc: AppError) -> None:
    """The dataset becomes `failed` with `exc` as its problem; its upload is removed."""

    with session_scope(ctx.sessions) as session:
        session.execute(
            update(Dataset)
            .where(Dataset.id == row["id"], Dataset.status == VALIDATING)
            .values(status=FAILED, error={**exc.problem(), "instance": f"/v1/datasets/{row['id']}"})
            .execution_options(synchronize_session=False)
        )
    if row["source"] == "upload":
        ctx.storage.delete(upload_key(row["id"]))


def sweep_work_dirs(settings: Settings) -> list[Path]:
    """Remove the ingest folders of this machine's workers that are gone (killed with
    SIGKILL mid-ingest): at a worker's start. The maintenance pass also removes those whose
    attempt is over (`app.deletion.sweep_job_folders`), from any machine."""
    return sweep_owned_dirs(settings.data_dir / "tmp", INGEST_WORK_PREFIX)


def _tmp_root(ctx: JobContext) -> str:
    path = ctx.settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _progress(ctx: JobContext) -> Any:
    def report(done: int, total: int) -> None:
        ctx.progress(0.1 + 0.8 * done / max(total, 1), "decoding", done=done, total=total,
                     unit="images")  # fmt: skip

    return report


def _validate(
    ctx: JobContext, row: dict[str, Any], work: Path, stored: list[str]
) -> dict[str, Any]:
    """The dataset's new column values; `AppError` for what the user must fix."""
    from app.datasets.service import layout_values, validate_upload

    if row["source"] == "upload":
        src = ctx.storage.local_dir(upload_key(row["id"]))
        if not src.is_dir():
            raise InvalidError("the upload's files are gone (removed before validation)")
        data = work / "data"
        layout, root = validate_upload(
            src, data, row["info"], ctx.settings, row["name"], progress=_progress(ctx)
        )
        ctx.progress(0.9, "storing")
        stored.append(row["uri"])
        ctx.storage.put_dir(data, row["uri"])
        info = {"root": root, "kind": layout.kind, "derived_splits": dict(layout.derived)}
        return {**layout_values(layout), "info": info}
    if row["uri"].startswith("torchvision:"):
        return _torchvision(row)
    return _reference(ctx, row)


def _reference(ctx: JobContext, row: dict[str, Any]) -> dict[str, Any]:
    """A `file://` or remote folder or file: opened (downloaded once) and every image decoded."""
    from app.datasets.ingest import open_and_validate
    from app.datasets.service import layout_values
    from workers.tasks.datasets import dataset_path

    try:
        path = dataset_path(ctx, row)
    except Exception as exc:  # fsspec backends raise their own error types
        raise InvalidError(f"cannot fetch {row['uri']}: {str(exc).splitlines()[0][:300]}") from None
    layout = open_and_validate(
        path, settings=ctx.settings, name=row["name"], class_names=row["class_names"] or None,
        progress=_progress(ctx),
    )  # fmt: skip
    values = layout_values(layout)
    if row["fingerprint"].startswith("uri-"):  # remote: fingerprinted by its URI
        values["fingerprint"] = row["fingerprint"]
    given = row["info"].get("format_given")
    info = {"root": str(path), "kind": layout.kind}
    return {**values, "info": info, "format": row["format"] if given else layout.kind}


def _torchvision(row: dict[str, Any]) -> dict[str, Any]:
    """A torchvision dataset: its classes and split sizes (its files are torchvision's)."""
    from app.imagedata import ImageDataError
    from app.imagedata.references import worker_location
    from workers.ml.data import open_any

    try:
        layout = open_any(worker_location(row["uri"]))
    except ImageDataError as exc:
        raise InvalidError(f"cannot read {row['uri']}: {exc}") from None
    except (OSError, RuntimeError) as exc:  # torchvision's own "not found" errors
        raise InvalidError(f"cannot read {row['uri']}: {exc}") from None
    return {
        "class_names": row["class_names"] or list(layout.class_names),
        "splits": {name: len(split) for name, split in layout.splits.items()},
    }
