"""`/v1/matrices`: the accuracy matrix of a base model and a fine-tuning method (JSON, CSV)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from app.deps import CurrentPrincipal, SessionDep, TransactionalRoute
from app.errors import problems
from app.finetuning.params import Method
from app.matrices import figures
from app.matrices.schemas import MatrixColumn, MatrixRead, MatrixRowRead
from app.matrices.service import Matrix, build_matrix
from app.negotiation import CSV, SVG, text_response, wants

router = APIRouter(prefix="/v1/matrices", tags=["matrices"], route_class=TransactionalRoute)

# The query of the matrix's three operations (JSON with negotiation, `/csv`, `/svg`).
BaseModelQuery = Annotated[str, Query(max_length=40, description="The base model")]
MethodQuery = Annotated[Method, Query(description="Fine-tuning method")]


def to_read(m: Matrix) -> MatrixRead:
    """The JSON form of a matrix."""
    return MatrixRead(
        base_model_id=m.base_model_id,
        method=m.method,
        datasets=[MatrixColumn(id=i, name=m.names.get(i, i)) for i in m.datasets],
        zero_shot=m.zero_shot,
        rows=[
            MatrixRowRead(
                train_dataset_id=r.train_dataset_id,
                train_dataset_name=m.names.get(r.train_dataset_id),
                finetuned_model_id=r.finetuned_model_id,
                accuracies=r.accuracies,
                gain=r.gain,
                ood_change=r.ood_change,
                flag=r.flag,
            )
            for r in m.rows
        ],
    )


def _cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def to_csv(m: Matrix) -> str:
    """One line per row (zero-shot first), one column per evaluation dataset (by name), then
    G, the out-of-domain change and `flag` (why the row's G is left out of gain fits; empty
    when it is not)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["train_dataset", "finetuned_model_id", *(m.names.get(i, i) for i in m.datasets),
         "gain", "ood_change", "flag"]
    )  # fmt: skip
    writer.writerow(["zero-shot", "", *(_cell(m.zero_shot.get(i)) for i in m.datasets), "", "", ""])
    for r in m.rows:
        cells = (_cell(r.accuracies.get(i)) for i in m.datasets)
        name = m.names.get(r.train_dataset_id, r.train_dataset_id)
        writer.writerow([name, r.finetuned_model_id, *cells, _cell(r.gain), _cell(r.ood_change),
                         r.flag or ""])  # fmt: skip
    return out.getvalue()


@router.get("", response_model=MatrixRead, responses=problems(404))
def get_matrix(
    session: SessionDep,
    principal: CurrentPrincipal,
    base_model_id: BaseModelQuery,
    method: MethodQuery = "full",
    # Content negotiation for browsers and hand-written clients; not declared, so that a
    # generated client's JSON operation only ever receives JSON (`/csv`, `/svg` are declared).
    format: Annotated[Literal["json", "csv", "svg"] | None, Query(include_in_schema=False)] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> MatrixRead | Response:
    """The accuracy matrix: rows = training dataset (plus the zero-shot row), columns =
    evaluation dataset, cells = test top-1 accuracy, with per row the in-domain gain over
    zero-shot error G and the mean out-of-domain accuracy change. The same matrix as CSV is
    `GET /v1/matrices/csv`, as an SVG heat map `GET /v1/matrices/svg` (this operation also
    answers `Accept: text/csv` / `image/svg+xml`, or `?format=csv|svg`, with them)."""
    matrix = build_matrix(
        session, project_id=principal.project_id, base_model_id=base_model_id, method=method
    )
    if wants(format, accept, "csv", CSV):
        return Response(to_csv(matrix), media_type=f"{CSV}; charset=utf-8")
    if wants(format, accept, "svg", SVG):
        return Response(figures.figure(session, matrix), media_type=SVG)
    return to_read(matrix)


@router.get(
    "/csv",
    response_class=Response,
    responses={**problems(404), **text_response(CSV, "The matrix")},
)
def get_matrix_csv(
    session: SessionDep,
    principal: CurrentPrincipal,
    base_model_id: BaseModelQuery,
    method: MethodQuery = "full",
) -> Response:
    """The accuracy matrix as CSV: `GET /v1/matrices` with `Accept: text/csv`, as an operation
    of its own for clients generated from this document (one media type per operation)."""
    matrix = build_matrix(
        session, project_id=principal.project_id, base_model_id=base_model_id, method=method
    )
    return Response(to_csv(matrix), media_type=f"{CSV}; charset=utf-8")


@router.get(
    "/svg",
    response_class=Response,
    responses={**problems(404), **text_response(SVG, "The heat map")},
)
def get_matrix_svg(
    session: SessionDep,
    principal: CurrentPrincipal,
    base_model_id: BaseModelQuery,
    method: MethodQuery = "full",
) -> Response:
    """The accuracy matrix as an SVG heat map (rows = training dataset, columns = evaluation
    dataset, in-domain cells outlined): `GET /v1/matrices` with `Accept: image/svg+xml`, as
    an operation of its own for generated clients."""
    matrix = build_matrix(
        session, project_id=principal.project_id, base_model_id=base_model_id, method=method
    )
    return Response(figures.figure(session, matrix), media_type=SVG)
