"""`/v1/datasets`: register a reference (JSON) or upload an archive (`:upload`, multipart)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.datasets import service
from app.datasets.schemas import NAME_PATTERN, NAME_RULE, DatasetList, DatasetRead, DatasetRef
from app.deletion import CASCADE_DOC
from app.deps import (
    JSON,
    MULTIPART,
    CurrentPrincipal,
    SessionDep,
    SettingsDep,
    StorageDep,
    TransactionalRoute,
    media_type,
)
from app.errors import InvalidError, problems
from app.limits import read_form
from app.models import Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=TransactionalRoute)

_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": NAME_PATTERN,
    "description": NAME_RULE,
}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "file"],
                    "properties": {
                        "name": _NAME,
                        "file": {"type": "string", "format": "binary",
                                 "description": "zip, tar or tar.gz of image folders"},
                        "manifest": {"type": "string", "format": "binary",
                                     "description": "optional CSV/Parquet manifest"},
                        "name_encoding": {
                            "type": "string", "maxLength": 40,
                            "description": "encoding of archive member names that declare "
                            "none (e.g. cp866, cp932); guessed when omitted",
                        },
                    },
                }
            },
        },
    }
}  # fmt: skip


#: The form fields of an upload: those its request body declares.
UPLOAD_FIELDS = tuple(
    UPLOAD_BODY["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
)
DUPLICATE_DOC = (
    "Register it even when a dataset of the project has the same content (fingerprint);"
    " otherwise that is a 409 naming the existing dataset: at once for the same remote or"
    " torchvision URI, else the ingest job's (the dataset fails with the 409 problem)"
)


async def _form_upload(
    request: Request,
) -> tuple[str, UploadFile, UploadFile | None, str | None]:
    form = await read_form(request, fields=UPLOAD_FIELDS, max_files=2, max_fields=6)
    name, file, manifest = form.get("name"), form.get("file"), form.get("manifest")
    encoding = _name_encoding(form.get("name_encoding"))
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or len(name) > 200:
        msg = f"required: {NAME_RULE} (pattern {NAME_PATTERN})"
        raise RequestValidationError([{"loc": ("body", "name"), "msg": msg, "type": "pattern"}])
    if not isinstance(file, UploadFile):
        raise InvalidError("form field `file` must be an uploaded archive (zip, tar, tar.gz)")
    if manifest is not None and not isinstance(manifest, UploadFile):
        raise InvalidError("form field `manifest` must be an uploaded CSV or Parquet file")
    return name.strip(), file, manifest, encoding


def _name_encoding(value: object) -> str | None:
    """The `name_encoding` form field, checked to name a codec Python knows."""
    import codecs

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidError("form field `name_encoding` must be an encoding name, e.g. cp866")
    try:
        return codecs.lookup(value.strip()).name
    except LookupError:
        raise InvalidError(
            f"unknown name_encoding {value.strip()!r}; use a name such as utf-8, cp437, cp866, "
            "cp932 or gbk"
        ) from None


ACCEPTED = (
    "Accepted: the dataset, `validating`, with `job_id`; `Location` is its ingest job, whose"
    " end makes the dataset `ready` or `failed` (with `error`)"
)


def _reads(session: Session, rows: list[Dataset]) -> list[DatasetRead]:
    """The datasets as read, with `duplicate_of`."""
    copies = service.duplicates_of(session, rows)
    return [
        DatasetRead.model_validate(r).model_copy(update={"duplicate_of": copies.get(r.id)})
        for r in rows
    ]


def _accepted(session: Session, row: Dataset, response: Response) -> DatasetRead:
    response.headers["Location"] = f"/v1/jobs/{row.job_id}"
    return _reads(session, [row])[0]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatasetRead,
    responses={202: {"description": ACCEPTED}, **problems(403, 409, 413, 415)},
    dependencies=[media_type(JSON, hint="to upload an archive, POST multipart to :upload")],
)
def create_dataset(
    ref: DatasetRef,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    response: Response,
    allow_duplicate: Annotated[bool, Query(description=DUPLICATE_DOC)] = False,
) -> DatasetRead:
    """Register a dataset the workers read where it lives.

    `{"name", "uri", "format"}` with a `file://` URI under an allowed root, a
    `torchvision://` URI, or an `s3://`/`https://` URI on an allowed host. The scheme, root
    or host and the name are checked now; the dataset is answered `validating` (202) and its
    `ingest` job (CPU queue, `Location`) opens it (decoding every image of a local folder or
    file) and makes it `ready` or `failed` with the problem in `error`. To upload an archive
    instead, use `POST /v1/datasets:upload`.
    """
    row = service.register_uri(
        session=session, storage=storage, settings=settings, project_id=principal.project_id,
        ref=ref, allow_duplicate=allow_duplicate,
    )  # fmt: skip
    return _accepted(session, row, response)


@router.post(
    ":upload",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatasetRead,
    responses={202: {"description": ACCEPTED}, **problems(409, 413, 415)},
    openapi_extra=UPLOAD_BODY,
    dependencies=[media_type(MULTIPART, hint="to register a URI, POST JSON to /v1/datasets")],
)
async def upload_dataset(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    response: Response,
    allow_duplicate: Annotated[bool, Query(description=DUPLICATE_DOC)] = False,
) -> DatasetRead:
    """Upload a dataset archive (multipart).

    `name`, `file` (zip/tar/tar.gz of `class/*.png` or `split/class/*.png`) and optionally
    `manifest` (CSV/Parquet with `path`, `label`, optional `split`). The upload is stored and
    answered at once (202, `validating`, `Location` = its `ingest` job); the job extracts,
    checks and decodes every image on a CPU worker and makes the dataset `ready`, or
    `failed` with the problem (422, 413, 409) in `error` and its files removed. Checks that
    need no decoding (media type, size limit, empty file, name) are answered now.
    """
    name, file, manifest, encoding = await _form_upload(request)

    def accept() -> DatasetRead:
        row = service.accept_upload(
            session=session, storage=storage, settings=settings,
            project_id=principal.project_id, name=name, archive=file.file,
            filename=file.filename or "upload.zip",
            manifest=manifest.file if manifest else None,
            manifest_name=manifest.filename if manifest else None,
            name_encoding=encoding, allow_duplicate=allow_duplicate,
        )  # fmt: skip
        return _accepted(session, row, response)

    return await run_in_threadpool(accept)


@router.get("", response_model=DatasetList, responses=problems())
def list_datasets(
    session: SessionDep,
    principal: CurrentPrincipal,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DatasetList:
    """List the project's datasets, newest first (cursor pagination)."""
    rows, nxt = service.list_datasets(
        session=session, project_id=principal.project_id, cursor=cursor, limit=limit
    )
    return DatasetList(items=_reads(session, rows), next_cursor=nxt)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=problems(404))
def get_dataset(dataset_id: str, session: SessionDep, principal: CurrentPrincipal) -> DatasetRead:
    """One dataset: status (`validating`, `ready`, `failed` with `error`), class names,
    split sizes, fingerprint (`duplicate_of`: the dataset a copy shares it with), skipped
    files and warnings."""
    row = service.get_dataset(
        session=session, project_id=principal.project_id, dataset_id=dataset_id
    )
    return _reads(session, [row])[0]


@router.delete("/{dataset_id}", status_code=204, responses=problems(404, 409))
def delete_dataset(
    dataset_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    storage: StorageDep,
    settings: SettingsDep,
    cascade: Annotated[bool, Query(description=CASCADE_DOC)] = False,
) -> Response:
    """Delete a dataset and its stored files. One with results (fine-tuned models trained on
    it, evaluations, scores, embeddings) or jobs not final yet that name it (`active_jobs`:
    queued, running or waiting; not its own ingest job, which is cancelled) is refused with
    409 counting them by kind (`dependents`), unless `cascade`, which cancels those jobs and
    deletes the results in one transaction; predictors fitted on it are kept and read as
    stale."""
    service.delete_dataset(
        session=session, storage=storage, project_id=principal.project_id,
        dataset_id=dataset_id, cascade=cascade, use_broker=settings.uses_broker,
    )  # fmt: skip
    return Response(status_code=204)
