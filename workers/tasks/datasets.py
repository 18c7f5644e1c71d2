"""A job's registered models and datasets on a worker: plain copies of their rows, the
base model loaded, and the dataset opened wherever it lives."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select, update

from app.db import session_scope
from app.models import Dataset, PretrainedModel
from workers.tasks.base import JobContext, JobError

#: The dataset columns a job reads (plain values, usable outside the session).
DATASET_COLUMNS = ("id", "name", "source", "uri", "class_names", "splits", "info", "fingerprint",
                   "format")  # fmt: skip


def load_rows(
    ctx: JobContext, model_id: str, dataset_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plain copies of the job's model and dataset rows (checked to be in its project)."""
    with session_scope(ctx.sessions) as session:
        model = session.scalar(
            select(PretrainedModel).where(
                PretrainedModel.id == model_id, PretrainedModel.project_id == ctx.project_id
            )
        )
        dataset = session.scalar(
            select(Dataset).where(Dataset.id == dataset_id, Dataset.project_id == ctx.project_id)
        )
        gone = [f"model {model_id}"] * (model is None)
        gone += [f"dataset {dataset_id}"] * (dataset is None)
        if gone:
            verb = "was" if len(gone) == 1 else "were"
            raise JobError(f"the job's {' and '.join(gone)} {verb} deleted before it ran")
        cols = ("id", "name", "arch", "pretrained", "preset")
        m = {c: getattr(model, c) for c in cols}
        d = {c: getattr(dataset, c) for c in DATASET_COLUMNS}
    return m, d


def base_model_row(ctx: JobContext, model_id: str) -> dict[str, Any]:
    """A plain copy of the project's base model row."""
    with session_scope(ctx.sessions) as session:
        row = session.scalar(
            select(PretrainedModel).where(
                PretrainedModel.id == model_id, PretrainedModel.project_id == ctx.project_id
            )
        )
        if row is None:
            raise JobError(f"base model {model_id} was deleted before the job ran")
        return {c: getattr(row, c) for c in ("id", "name", "arch", "pretrained", "preset")}


def dataset_rows(ctx: JobContext, ids: list[str] | None) -> list[dict[str, Any]]:
    """Plain copies of the given datasets of the project (for None, all of them that are
    validated: not `validating` nor `failed`), by name."""
    with session_scope(ctx.sessions) as session:
        query = select(Dataset).where(Dataset.project_id == ctx.project_id)
        if ids is not None:
            query = query.where(Dataset.id.in_(ids))
        else:
            query = query.where(Dataset.status.not_in(("validating", "failed")))
        rows = [{c: getattr(d, c) for c in DATASET_COLUMNS} for d in session.scalars(query)]
    missing = sorted(set(ids or ()) - {r["id"] for r in rows})
    if missing:
        what = ("dataset " if len(missing) == 1 else "datasets ") + ", ".join(missing)
        verb = "was" if len(missing) == 1 else "were"
        raise JobError(f"the job's {what} {verb} deleted before it ran")
    return sorted(rows, key=lambda r: r["name"])


def load_base(ctx: JobContext, model_row: dict[str, Any]) -> Any:
    """The base model (a cached `LoadedModel`: copy `.model` before changing it)."""
    from app.imagedata import ModelSpecError
    from workers.ml.models import load_model
    from workers.tasks.datasets import model_spec

    try:
        return load_model(model_spec(ctx, model_row), device=ctx.settings.device)
    except ModelSpecError as exc:
        raise JobError(str(exc)) from None


def ref_names(model: dict[str, Any], dataset: dict[str, Any]) -> dict[str, str]:
    """The names beside the ids in a job's result (no second call for a log or dashboard)."""
    return {"model_name": model["name"], "dataset_name": dataset["name"]}


def dataset_path(ctx: JobContext, row: dict[str, Any]) -> Path:
    """A local path to open the dataset from (downloading remote references once)."""
    if row["source"] == "upload":
        return ctx.storage.local_dir(row["uri"]) / row["info"].get("root", ".")
    parsed = urlparse(row["uri"])
    if parsed.scheme == "file":
        return Path(parsed.path)
    import fsspec

    def fetch(into: Path) -> None:
        fs, path = fsspec.core.url_to_fs(row["uri"])
        fs.get(path.rstrip("/") + "/", str(into), recursive=True)

    return ctx.storage.cache.get(remote_key(row["uri"]), "", fetch)


def remote_key(uri: str) -> str:
    """The key of a remote reference's local copy in the worker's cache (`app.artifacts.cache`;
    its source is not checked: the service never deletes it, so the copy goes by age or
    the bound in bytes)."""
    return f"remote/{hashlib.sha256(uri.encode()).hexdigest()}"


def remote_copy(ctx: JobContext, uri: str) -> Path:
    """A local copy of the remote file at `uri`, fetched once (fsspec) into the worker's cache
    under its own name (an architecture JSON's stem is its open_clip name)."""
    import fsspec

    name = Path(urlparse(uri).path).name or "file"

    def fetch(into: Path) -> None:
        fs, path = fsspec.core.url_to_fs(uri)
        fs.get(path, str(into / name))

    try:
        return ctx.storage.cache.get(remote_key(uri), "", fetch) / name
    except Exception as exc:  # fsspec backends raise their own error types
        raise JobError(f"cannot fetch {uri}: {str(exc).splitlines()[0][:300]}") from None


def model_spec(ctx: JobContext, row: dict[str, Any]) -> str:
    """The spec a model row loads with (`app.basemodels.service.spec_of`), its remote
    `arch` / `pretrained` URIs replaced by local copies (`remote_copy`); a fetched checkpoint
    must pass `app.basemodels.checkpoints.check_checkpoint` (safetensors or weights-only)."""
    from types import SimpleNamespace

    from app.basemodels.checkpoints import check_checkpoint
    from app.basemodels.service import is_remote, spec_of
    from app.errors import InvalidError

    values = dict(row)
    for key in ("arch", "pretrained"):
        if is_remote(values.get(key)):
            local = remote_copy(ctx, values[key])
            if key == "pretrained":
                try:
                    check_checkpoint(local, local.name)
                except InvalidError as exc:
                    raise JobError(f"{values[key]}: {exc.detail}") from None
            values[key] = str(local)
    return spec_of(SimpleNamespace(**values))  # type: ignore[arg-type]


def open_layout(ctx: JobContext, row: dict[str, Any]) -> Any:
    """The dataset's layout (app.imagedata), with the class names stored at registration."""
    from app.imagedata import ImageDataError, open_dataset

    try:
        if row["uri"] and row["uri"].startswith("torchvision:"):
            from app.imagedata.references import worker_location
            from workers.ml.data import open_any

            layout = open_any(worker_location(row["uri"]))
        else:
            layout = open_dataset(
                dataset_path(ctx, row), name=row["name"], class_names=row["class_names"] or None
            )
    except ImageDataError as exc:
        raise JobError(f"cannot read dataset {row['id']}: {exc}") from None
    _record_layout(ctx, row, layout)
    return layout


def _record_layout(ctx: JobContext, row: dict[str, Any], layout: Any) -> None:
    """Store the class names and split sizes of a dataset registered by a reference the API
    could not open (torchvision://, s3://, ...), the first time a worker opens it; values
    given at registration are kept."""
    values: dict[str, Any] = {}
    if not row.get("class_names"):
        values["class_names"] = list(layout.class_names)
    if not row.get("splits"):
        values["splits"] = {name: len(split) for name, split in layout.splits.items()}
    if not values:
        return
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(Dataset)
            .where(Dataset.id == row["id"], Dataset.project_id == ctx.project_id)
            .values(**values)
        )
    row.update(values)
