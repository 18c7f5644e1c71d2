"""What a job type declares (its parameter schema, queue, reference checks and links), and
the reference checks job types share.

Each domain declares its types as module constants (`EMBED = JobType(...)`) on this module,
which sits below the domains; the one list of them is `app.jobs.registry.JOB_TYPES`, above
the domains, and their handlers are `workers.tasks.HANDLERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.errors import InvalidError
from app.models import Dataset, PretrainedModel
from app.ownership import get_owned

Check = Callable[[Session, str, BaseModel], None]
Links = Callable[[str, dict[str, Any], dict[str, Any] | None], dict[str, str]]


@dataclass(frozen=True)
class JobType:
    """One kind of job: `params` has a `type: Literal[name]` field; `check` raises on bad
    references at submission (404/409/422); `links` names what a job of it produced;
    `internal` types are created by the service itself, never by `POST /v1/jobs`;
    `result` (a `JobResult` with the same `type` literal) is the shape of what it returns."""

    name: str
    params: type[BaseModel]
    queue: str
    check: Check | None = None
    links: Links | None = None
    internal: bool = False
    result: type[BaseModel] | None = None


class JobResult(BaseModel):
    """Base of a job type's result: `type` names the job type (the union's discriminator).

    Extra keys are kept: the fields declared are the contract, a worker may add figures.
    """

    model_config = ConfigDict(extra="allow")


class NamedResult(JobResult):
    """A result that names the job's model and dataset beside their ids in `params`."""

    model_name: str | None = Field(default=None, description="The model's name.")
    dataset_name: str | None = Field(default=None, description="The dataset's name.")


def require_split(dataset: Dataset, split: str, why: str) -> None:
    """422 naming the dataset's splits unless it has `split` (the field is `split`), and
    422 when that split is known to hold 0 images (nothing a job could read)."""
    # Datasets registered by URI have unknown splits ({}) until a worker reads them.
    if dataset.splits and split not in dataset.splits:
        raise InvalidError(
            f"dataset {dataset.id} has no {split!r} split ({why}); it has {sorted(dataset.splits)}",
            errors=[{"loc": ["body", "split"], "type": "enum",
                     "msg": f"no such split; allowed: {', '.join(sorted(dataset.splits))}"}],
        )  # fmt: skip
    if dataset.splits and dataset.splits.get(split) == 0:
        from app.imagedata.layout import empty_split_message

        raise InvalidError(
            empty_split_message(split, dataset.id, dict(dataset.splits)),
            errors=[{"loc": ["body", "split"], "type": "value_error",
                     "msg": f"split {split!r} has 0 images"}],
        )  # fmt: skip


def prompt_dataset_name(dataset: Dataset) -> str:
    """The name a worker resolves a job's named prompts with (`resolve_templates`): the
    torchvision dataset's for a ``torchvision://`` reference, else the dataset's own."""
    if dataset.uri and dataset.uri.startswith("torchvision:"):
        from app.imagedata.errors import LayoutError
        from app.imagedata.references import parse_torchvision_uri

        try:
            return parse_torchvision_uri(dataset.uri)[0]
        except LayoutError:
            pass
    return dataset.name


def require_prompts(dataset: Dataset, prompts: str | Sequence[str] | None) -> None:
    """422 naming the bad value and what is allowed unless `prompts` (a job's ``prompts``: a
    list of templates with ``{c}``, an ensemble's name or None) resolves to templates for
    this dataset, as the worker will (`app.imagedata.prompts.resolve_templates`); e.g.
    ``clip_benchmark`` on a dataset CLIP_benchmark has no templates for."""
    from app.imagedata import ImageDataError
    from app.imagedata.prompts import NAMED_ENSEMBLES, render_prompts, resolve_templates

    try:
        render_prompts(resolve_templates(prompts, prompt_dataset_name(dataset)), ["x"])
    except ImageDataError as exc:
        names = ", ".join(NAMED_ENSEMBLES)
        raise InvalidError(
            f"prompts {prompts!r} cannot be used with dataset {dataset.id} "
            f"({dataset.name!r}): {exc}",
            errors=[
                {
                    "loc": ["body", "prompts"],
                    "type": "value_error",
                    "msg": f"allowed: a list of templates with {{c}}, or one of {names}",
                }
            ],
        ) from None


def check_refs(
    session: Session,
    project_id: str,
    model_id: str,
    dataset_id: str,
    split: str | None = None,
    prompts: str | Sequence[str] | None = None,
) -> None:
    """404 unless the job's model and dataset both belong to the caller's project; 422 unless
    the dataset has `split` (when given) and `prompts` resolve for it (`require_prompts`)."""
    get_owned(session, PretrainedModel, model_id, project_id, "model")
    dataset = get_owned(session, Dataset, dataset_id, project_id, "dataset")
    if split is not None:
        require_split(dataset, split, "the split to read")
    require_prompts(dataset, prompts)
