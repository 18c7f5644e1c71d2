"""Deleting base models and datasets without wiping results by surprise, and the orphan sweep.

A delete that would remove results (fine-tuned models, evaluations, scores, predictors,
embeddings) or break jobs not final yet (queued, running or waiting jobs that name it, or a
fine-tuned model that goes with it: `active_jobs`) is refused with 409 and the dependents
counted by kind, unless the caller asks for the cascade. A cascade cancels those jobs (with
the caller's `cancel`, `app.jobs.service.cancel_job`) and deletes the rows in the request's
one transaction, and the
artifacts they pointed to (uploads, embeddings, checkpoints) after the commit, each only if no
live row still points to it (embeddings are content-addressed: two rows may share one). A
crash between the commit and the file removal leaves orphans: artifacts no row points to,
removed by `sweep_orphans` (run by the maintenance loop and `iimm maintenance`).

The same sweep purges what finished jobs leave behind: the arrays a `measures` job read
(`measures/<upload id>`, stored by `POST /v1/measures:upload`) are kept while the job may
still run and for `job_files_retention_s` after it finished, then removed; `sweep_temp_folders`
removes the working folders of uploads whose process died mid-request, and `sweep_job_folders`
those of job attempts that are over (a worker killed mid-ingest; `app.workdirs`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from app.artifacts import Storage
from app.db import after_commit, utcnow
from app.dependent_kinds import counted
from app.errors import ConflictError
from app.models import (
    Dataset,
    Embedding,
    Evaluation,
    FinetunedModel,
    Job,
    JobStatus,
    Predictor,
    PretrainedModel,
    Score,
)
from app.workdirs import sweep_owned_dirs

log = logging.getLogger("iimm.deletion")

#: Top-level artifact prefixes and the column of the row that owns an artifact under each.
#: `finetune/<job id>`: a fine-tune's checkpoints, owned by its fine-tuned model or, while
#: the job is not final, by the job.
#: `models/<model id>`: an uploaded model's architecture and checkpoint, owned by the model.
#: `measures/<upload id>`: the arrays of a `measures` job, owned by the job until some time
#: after it finished (`job_files_retention_s`).
#: `uploads/<dataset id>`: an upload waiting for its ingest job, owned by the dataset.
#: `shards/<job id>`: a sharded embed job's shards, owned by the job while it is not final
#: (it removes them when it ends; the sweep, those of a job cancelled while it waited).
PREFIXES = ("datasets", "embeddings", "finetune", "measures", "models", "shards", "uploads")
FINAL = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value)
#: Working folders of requests (`<data dir>/tmp/iimm-upload-*`, `<data dir>/iimm-model-*`).
TEMP_FOLDERS = ("tmp/iimm-upload-*", "iimm-model-*")
#: Working folders of job attempts, named by their owner (`app.workdirs`): `<data dir>/tmp/
#: iimm-ingest-<owner>-<job id>.<attempt>-*`, where an `ingest` job extracts an upload.
INGEST_WORK_PREFIX = "iimm-ingest-"
CASCADE_DOC = (
    "Also delete the results that depend on it and cancel the jobs not final yet that name it"
    " (otherwise such a delete is a 409)"
)
#: Cancels the given jobs (and their child jobs) in the caller's transaction, the second
#: argument being their `error` ("cancelled: model 'x' (mdl_1) deleted with cascade").
CancelJobs = Callable[[list[str], str], None]


#: The kind of dependent that jobs not final yet are counted as, and their statuses.
ACTIVE_JOBS = "active_jobs"
ACTIVE = (JobStatus.queued.value, JobStatus.running.value, JobStatus.waiting.value)


#: How many of the active jobs a refused delete names (`active_job_ids`, the detail).
NAMED_JOBS = 10


def named_jobs(job_ids: list[str]) -> str:
    """The first NAMED_JOBS of `job_ids`, and how many more: "job_a, job_b …and 3 more"."""
    shown = ", ".join(job_ids[:NAMED_JOBS])
    more = len(job_ids) - NAMED_JOBS
    return f"{shown} …and {more} more" if more > 0 else shown


class DependentsError(ConflictError):
    """409: the delete would remove results or cancel jobs (`active_jobs`); `dependents`
    counts them by kind, `active_job_ids` names the first NAMED_JOBS of those jobs."""

    def __init__(
        self, what: str, dependents: dict[str, int], job_ids: list[str] | None = None
    ) -> None:
        listed = ", ".join(counted(n, kind) for kind, n in dependents.items())
        has = (
            "results or jobs not final yet that a delete would remove or cancel"
            if ACTIVE_JOBS in dependents
            else "results that a delete would remove"
        )
        detail = f"{what} has {has} ({listed}); delete with ?cascade=true to remove them too"
        extensions: dict[str, Any] = {"dependents": dependents}
        if job_ids:
            detail += f"; active jobs: {named_jobs(job_ids)}"
            extensions["active_job_ids"] = job_ids[:NAMED_JOBS]
        super().__init__(detail, extensions=extensions)


def _count(session: Session, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _model_filters(model_id: str) -> dict[Any, list[Any]]:
    return {
        FinetunedModel: [FinetunedModel.base_model_id == model_id],
        Evaluation: [Evaluation.base_model_id == model_id],
        Score: [Score.model_id == model_id],
        Predictor: [Predictor.base_model_id == model_id],
        Embedding: [Embedding.model_id == model_id],
    }


def _dataset_filters(dataset_id: str) -> dict[Any, list[Any]]:
    tuned = select(FinetunedModel.id).where(FinetunedModel.train_dataset_id == dataset_id)
    return {
        FinetunedModel: [FinetunedModel.train_dataset_id == dataset_id],
        Evaluation: [
            or_(Evaluation.dataset_id == dataset_id, Evaluation.finetuned_model_id.in_(tuned))
        ],
        Score: [Score.dataset_id == dataset_id],
        Embedding: [Embedding.dataset_id == dataset_id],
    }


_KIND = {
    FinetunedModel: "finetuned_models",
    Evaluation: "evaluations",
    Score: "scores",
    Predictor: "predictors",
    Embedding: "embeddings",
}


def _names(params: object, ids: set[str]) -> bool:
    """Whether a job's parameters name one of `ids` (as a value or in a list value)."""
    if not isinstance(params, dict):
        return False
    for value in params.values():
        if isinstance(value, str) and value in ids:
            return True
        if isinstance(value, list) and any(isinstance(v, str) and v in ids for v in value):
            return True
    return False


def active_jobs(
    session: Session, project_id: str, ids: Iterable[str], *, exclude: str | None = None
) -> list[str]:
    """The project's queued, running or waiting jobs whose parameters name one of `ids`
    (`model_id`, `dataset_id`, `dataset_ids`, `evaluate_on`, ...), without the child jobs of
    such a job (cancelling it cancels them) and without `exclude` and its children."""
    wanted = set(ids)
    rows = session.execute(
        select(Job.id, Job.parent_id, Job.params).where(
            Job.project_id == project_id, Job.status.in_(ACTIVE)
        )
    ).all()
    found = {r.id: r.parent_id for r in rows if _names(r.params, wanted)}
    return sorted(
        job_id
        for job_id, parent in found.items()
        if parent not in found and (exclude is None or exclude not in (job_id, parent))
    )


def _dependents(session: Session, filters: dict[Any, list[Any]]) -> dict[str, int]:
    counts = {_KIND[m]: _count(session, m, *where) for m, where in filters.items()}
    return {k: n for k, n in counts.items() if n}


def _remove(session: Session, storage: Storage, filters: dict[Any, list[Any]]) -> None:
    """Delete the dependents' rows (children first) and schedule their artifacts."""
    keys = set(session.scalars(select(Embedding.uri).where(*filters[Embedding])))
    keys |= {
        k
        for k in session.scalars(
            select(FinetunedModel.checkpoint_uri).where(*filters[FinetunedModel])
        )
        if k
    }
    for model in (Evaluation, Predictor, Score, Embedding, FinetunedModel):
        if model in filters:
            session.execute(delete(model).where(*filters[model]).execution_options(
                synchronize_session=False))  # fmt: skip
    remove_artifacts_after_commit(session, storage, keys)


def remove_artifacts_after_commit(session: Session, storage: Storage, keys: set[str]) -> None:
    """After the commit, remove the artifacts `keys` that no live row points to (the check
    runs in this transaction, after its deletes)."""
    free = sorted(k for k in keys if not _referenced(session, k))

    def remove() -> None:
        for key in free:
            try:
                storage.delete(key)
            except Exception as exc:  # the sweep removes it later
                log.warning("could not remove artifact %s: %s", key, exc)

    if free:
        after_commit(session, remove)


def _referenced(session: Session, key: str) -> bool:
    return bool(
        _count(session, Embedding, Embedding.uri == key)
        or _count(session, FinetunedModel, FinetunedModel.checkpoint_uri == key)
        or _count(session, Dataset, Dataset.source == "upload", Dataset.uri == key)
    )


def _jobs_of(session: Session, row: Any, filters: dict[Any, list[Any]]) -> list[str]:
    """Active jobs naming `row` or a fine-tuned model its delete removes."""
    tuned = set(session.scalars(select(FinetunedModel.id).where(*filters[FinetunedModel])))
    exclude = row.job_id if isinstance(row, Dataset) else None  # its own ingest job
    return active_jobs(session, row.project_id, {row.id, *tuned}, exclude=exclude)


def _refuse_or_cancel(
    session: Session,
    what: str,
    found: dict[str, int],
    jobs: list[str],
    *,
    cascade: bool,
    cancel: CancelJobs | None,
) -> None:
    if jobs:
        found = {**found, ACTIVE_JOBS: len(jobs)}
    if found and not cascade:
        raise DependentsError(what, found, jobs)
    if jobs:
        if cancel is None:
            raise RuntimeError(f"{what}: {len(jobs)} active job(s) and no way to cancel them")
        cancel(jobs, f"cancelled: {what} deleted with cascade")
        session.flush()


def delete_model(
    *,
    session: Session,
    storage: Storage,
    row: PretrainedModel,
    cascade: bool,
    cancel: CancelJobs | None = None,
) -> None:
    """Delete base model `row`; with dependents (results, active jobs), 409 unless
    `cascade`, which cancels the jobs with `cancel` first."""
    filters = _model_filters(row.id)
    found = _dependents(session, filters)
    jobs = _jobs_of(session, row, filters)
    what = f"model {row.name!r} ({row.id})"
    _refuse_or_cancel(session, what, found, jobs, cascade=cascade, cancel=cancel)
    _remove(session, storage, filters)
    session.delete(row)
    session.flush()
    uploaded = f"models/{row.id}"
    if storage.exists(uploaded):
        remove_artifacts_after_commit(session, storage, {uploaded})


def delete_dataset(
    *,
    session: Session,
    storage: Storage,
    row: Dataset,
    cascade: bool,
    cancel: CancelJobs | None = None,
) -> None:
    """Delete dataset `row` (its upload after the commit); with dependents (results, active
    jobs other than its own ingest job), 409 unless `cascade`, which cancels the jobs with
    `cancel` first. Predictors fitted on it are kept and read as stale."""
    filters = _dataset_filters(row.id)
    found = _dependents(session, filters)
    jobs = _jobs_of(session, row, filters)
    what = f"dataset {row.name!r} ({row.id})"
    _refuse_or_cancel(session, what, found, jobs, cascade=cascade, cancel=cancel)
    _remove(session, storage, filters)
    upload = row.uri if row.source == "upload" else None
    session.delete(row)
    session.flush()
    if upload:  # its files, and the archive an ingest job had not validated yet
        remove_artifacts_after_commit(session, storage, {upload, f"uploads/{row.id}"})


def sweep_orphans(
    session: Session, storage: Storage, *, min_age_s: float, job_files_retention_s: float = 0.0
) -> list[str]:
    """Remove artifacts no live row points to, untouched for `min_age_s` seconds (a job may
    be writing one whose row comes at its end); returns the removed keys.

    A fine-tune's checkpoints (`finetune/<job id>`) and a sharded embedding's shards
    (`shards/<job id>`) are kept while the job is not final.
    A `measures` job's arrays are kept while the job is not final and for
    `job_files_retention_s` seconds after it finished. Artifacts whose age the storage
    cannot tell are kept.
    """
    live = set(session.scalars(select(Embedding.uri)))
    live |= {k for k in session.scalars(select(FinetunedModel.checkpoint_uri)) if k}
    live |= set(session.scalars(select(Dataset.uri).where(Dataset.source == "upload")))
    live |= {f"uploads/{i}" for i in session.scalars(select(Dataset.id))}
    live |= {f"models/{i}" for i in session.scalars(select(PretrainedModel.id))}
    live |= _job_files(session, retention_s=job_files_retention_s)
    active = {
        f"{prefix}/{j}"
        for j in session.scalars(select(Job.id).where(Job.status.not_in(FINAL)))
        for prefix in ("finetune", "shards")
    }
    removed = []
    now = time.time()
    for prefix in PREFIXES:
        for key in _children(storage, prefix):
            if key in live or key in active:
                continue
            newest = _newest_mtime(storage, key)
            if newest is None or now - newest < min_age_s:
                continue
            storage.delete(key)
            removed.append(key)
    if removed:
        log.info("removed %d orphaned artifact(s): %s", len(removed), ", ".join(removed[:20]))
    return removed


def _job_files(session: Session, *, retention_s: float) -> set[str]:
    """Artifacts of `measures` jobs not final, or final for less than `retention_s`."""
    cutoff = utcnow() - timedelta(seconds=retention_s)
    finished = func.coalesce(Job.finished_at, Job.updated_at)
    rows = session.scalars(
        select(Job.params).where(
            Job.type == "measures", or_(Job.status.not_in(FINAL), finished > cutoff)
        )
    )
    return {str(p["artifact"]) for p in rows if isinstance(p, dict) and p.get("artifact")}


def sweep_temp_folders(data_dir: Path, *, min_age_s: float) -> list[Path]:
    """Remove request working folders under `data_dir` (`TEMP_FOLDERS`) untouched for
    `min_age_s` seconds: a process killed mid-upload leaves its folder (a live request keeps
    writing to its own). Only this process's data directory: each API host sweeps its own."""
    removed = []
    now = time.time()
    for pattern in TEMP_FOLDERS:
        for path in data_dir.glob(pattern):
            newest = _newest_local_mtime(path)
            if newest is not None and now - newest >= min_age_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    if removed:
        log.info("removed %d stale working folder(s)", len(removed))
    return removed


def sweep_job_folders(session: Session, data_dir: Path) -> list[Path]:
    """Remove the job attempts' working folders under `data_dir` (`INGEST_WORK_PREFIX`)
    whose owner is a dead process of this machine, or whose attempt no longer holds its job
    (the job finished, was deleted, was given back or is another attempt's): what a worker
    killed with SIGKILL left, on any machine sharing the data directory. A live attempt's
    folder stays however long it takes."""

    def over(attempts: list[tuple[str, int]]) -> set[tuple[str, int]]:
        ids = sorted({job_id for job_id, _ in attempts})
        held = {
            (job_id, n)
            for job_id, n in session.execute(
                select(Job.id, Job.attempts).where(
                    Job.id.in_(ids), Job.status == JobStatus.running.value
                )
            )
        }
        return {a for a in attempts if a not in held}

    return sweep_owned_dirs(data_dir / "tmp", INGEST_WORK_PREFIX, job_over=over)


def _newest_local_mtime(path: Path) -> float | None:
    try:
        times = [path.lstat().st_mtime]
        times += [p.lstat().st_mtime for p in path.rglob("*")]
    except OSError:  # removed meanwhile (its request ended)
        return None
    return max(times)


def _children(storage: Storage, prefix: str) -> list[str]:
    root = storage.path(prefix)
    if not storage.fs.exists(root):
        return []
    base = storage.root.rstrip("/") + "/"
    out = []
    for path in storage.fs.ls(root, detail=False):
        path = str(path)
        out.append(
            path[len(base) :] if path.startswith(base) else f"{prefix}/{path.rsplit('/', 1)[-1]}"
        )
    return out


def _newest_mtime(storage: Storage, key: str) -> float | None:
    """Latest modification time (epoch seconds) under `key`; None when unknown."""
    try:
        infos = storage.fs.find(storage.path(key), detail=True, withdirs=True)
    except Exception:
        return None
    times = []
    for info in [*infos.values(), storage.fs.info(storage.path(key))]:
        mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
        if mtime is None:
            return None
        times.append(mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime))
    return max(times) if times else None
