"""Base model service: register (spec checked without torch), list, get, delete."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import Storage
from app.basemodels.schemas import ModelCreate
from app.config import Settings
from app.db import new_id, on_rollback
from app.errors import ForbiddenError, InvalidError
from app.imagedata import ModelSpecError, resolve_spec
from app.imagedata.model_specs import BUNDLED_CONFIGS, RANDOM
from app.locations import REMOTE_SCHEMES
from app.models import PretrainedModel
from app.ownership import add_named, get_owned
from app.pagination import page


def spec_of(row: PretrainedModel) -> str:
    """The model spec string of a stored model."""
    if row.preset:
        return row.preset
    if row.arch.startswith(("hf-hub:", "local-dir:")):
        return row.arch
    return f"{row.arch}@{row.pretrained or 'random'}"


def _check_paths(paths: list[str | None], settings: Settings) -> None:
    roots = [BUNDLED_CONFIGS.resolve(), *(Path(r).resolve() for r in settings.allowed_roots)]
    for raw in paths:
        if raw is None:
            continue
        path = Path(raw).resolve()
        if not any(path == r or r in path.parents for r in roots):
            raise ForbiddenError(
                f"{raw} is not under an allowed root; allowed roots (IIMM_ALLOWED_ROOTS): "
                f"{settings.allowed_roots or 'none configured'}, and the bundled configs"
            )


def is_remote(value: str | None) -> bool:
    """Whether a stored `arch` / `pretrained` is a remote URI the workers fetch."""
    return value is not None and value.startswith(tuple(f"{s}://" for s in REMOTE_SCHEMES))


def _locate(raw: str | None, settings: Settings, *, checkpoint: bool) -> str | None:
    """`raw` unchanged unless it is a URI: a ``file://`` one becomes its path (403 outside
    `IIMM_ALLOWED_ROOTS`; a checkpoint must load as safetensors or weights-only), a remote
    one is kept for the workers (403 unless its host is in `IIMM_ALLOWED_HOSTS`)."""
    from app.basemodels.checkpoints import check_checkpoint
    from app.locations import check_location

    if raw is None or "://" not in raw:
        return raw
    path = check_location(raw, settings)
    if path is None:
        if not checkpoint and not urlparse(raw).path.endswith(".json"):
            raise InvalidError(f"{raw}: a remote architecture must be an open_clip config .json")
        return raw
    if not path.is_file():
        raise InvalidError(f"{raw} is not a file on this machine")
    if checkpoint:
        check_checkpoint(path, path.name)
    return str(path)


def create_model(
    *, session: Session, settings: Settings, project_id: str, body: ModelCreate
) -> PretrainedModel:
    """Register a model after checking its spec (unknown architecture, missing file: 422).
    `arch` and `pretrained` may be URIs: ``file://`` under `IIMM_ALLOWED_ROOTS`, or
    ``https://``, ``s3://``, ``gs://`` on `IIMM_ALLOWED_HOSTS` (fetched once by the workers)."""
    arch = _locate(body.arch, settings, checkpoint=False)
    weights = _locate(body.pretrained, settings, checkpoint=True)
    # the local parts are checked as usual; a remote part stands in as a bundled config / random
    local = body.model_copy(
        update={"arch": str(BUNDLED_CONFIGS / "tiny-clip.json") if is_remote(arch) else arch,
                "pretrained": RANDOM if is_remote(weights) else weights}
    )  # fmt: skip
    try:
        spec = resolve_spec(local.spec)
    except ModelSpecError as exc:
        raise InvalidError(str(exc)) from None
    pretrained = spec.pretrained if spec.kind == "checkpoint" else None
    local_dir = spec.arch.removeprefix("local-dir:") if spec.kind == "local-dir" else None
    _check_paths([spec.config_path, pretrained, local_dir], settings)
    stored_arch = arch if is_remote(arch) else spec.config_path or spec.arch
    stored_weights = spec.pretrained if spec.kind != "random" else RANDOM
    row = PretrainedModel(
        id=new_id("mdl"),
        project_id=project_id,
        name=body.name,
        arch=stored_arch if body.preset is None else spec.arch,
        pretrained=weights if is_remote(weights) else stored_weights,
        preset=body.preset,
    )
    return add_named(session, row, "model")


def upload_model(
    *, session: Session, storage: Storage, settings: Settings, project_id: str, name: str,
    architecture: BinaryIO, checkpoint: BinaryIO, checkpoint_name: str,
) -> PretrainedModel:  # fmt: skip
    """Register a model from an uploaded open_clip architecture JSON and checkpoint, both
    streamed to the artifact store (each at most `max_upload_bytes`) after the checks of
    `app.basemodels.checkpoints`; nothing is left behind on failure."""
    from app.basemodels.checkpoints import check_architecture, check_checkpoint
    from app.locations import save_stream

    if not storage.is_local:
        raise InvalidError("model uploads need a local or shared-filesystem artifact store")
    model_id = new_id("mdl")
    work = Path(tempfile.mkdtemp(prefix="iimm-model-", dir=settings.data_dir))
    try:
        arch = work / f"{model_id}.json"  # the stem is the architecture's open_clip name
        json_bound = settings.max_json_bytes <= settings.max_upload_bytes
        save_stream(
            architecture, arch, min(settings.max_json_bytes, settings.max_upload_bytes),
            "IIMM_MAX_JSON_BYTES" if json_bound else "IIMM_MAX_UPLOAD_BYTES",
        )  # fmt: skip
        check_architecture(arch)
        weights = work / "upload"
        save_stream(checkpoint, weights, settings.max_upload_bytes)
        weights.rename(work / check_checkpoint(weights, checkpoint_name))
        key = f"models/{model_id}"
        storage.put_dir(work, key)
        on_rollback(session, lambda: storage.delete(key))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    folder = Path(storage.path(key))
    stored = next(p for p in folder.iterdir() if p.name.startswith("weights."))
    row = PretrainedModel(id=model_id, project_id=project_id, name=name,
                    arch=str(folder / f"{model_id}.json"), pretrained=str(stored))  # fmt: skip
    return add_named(session, row, "model")


def get_model(*, session: Session, project_id: str, model_id: str) -> PretrainedModel:
    """The caller's model (404 for other projects' ids)."""
    return get_owned(session, PretrainedModel, model_id, project_id, "model")


def list_models(
    *, session: Session, project_id: str, cursor: str | None, limit: int
) -> tuple[list[PretrainedModel], str | None]:
    """A page of the caller's models, newest first."""
    query = select(PretrainedModel).where(PretrainedModel.project_id == project_id)
    return page(session, query, PretrainedModel.id, cursor, limit)


def delete_model(
    *,
    session: Session,
    storage: Storage,
    project_id: str,
    model_id: str,
    cascade: bool = False,
    use_broker: bool = False,
) -> None:
    """Delete a model; with results computed from it or jobs not final that name it, 409
    unless `cascade`, which cancels those jobs (see `app.deletion`)."""
    from app.deletion import delete_model as delete
    from app.jobs.service import cancel_jobs

    row = get_model(session=session, project_id=project_id, model_id=model_id)

    def cancel(job_ids: list[str], reason: str) -> None:
        cancel_jobs(session=session, project_id=project_id, job_ids=job_ids,
                    use_broker=use_broker, storage=storage, reason=reason)  # fmt: skip

    delete(session=session, storage=storage, row=row, cascade=cascade, cancel=cancel)
