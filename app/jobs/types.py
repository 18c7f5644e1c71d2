"""The built-in job types: embed, score, and measures (internal: large `POST /v1/measures`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ConflictError, InvalidError
from app.imagedata.prompts import prompts_hash
from app.jobtype import JobResult, JobType, NamedResult, check_refs
from app.measures.registry import Variant
from app.models import Embedding, Score

FAST = "fast"


def _check_prompts(value: list[str] | str | None) -> list[str] | str | None:
    from app.imagedata import ImageDataError
    from app.imagedata.prompts import check_prompts

    try:
        check_prompts(value)
    except ImageDataError as exc:
        raise ValueError(str(exc)) from None
    return value


#: A list of templates (at most 64) or the name of an ensemble; checked at submission.
Prompts = Annotated[
    Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=64)]
    | Annotated[str, Field(max_length=100)]
    | None,
    AfterValidator(_check_prompts),
]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedParams(_Params):
    """Embed a dataset split with a base model; stores embeddings and zero-shot accuracy."""

    type: Literal["embed"] = "embed"
    model_id: str = Field(max_length=40, examples=["mdl_0193c0ffee00a1b2c3d4e5f6"])
    dataset_id: str = Field(max_length=40, examples=["dst_0193c0ffee00a1b2c3d4e5f6"])
    split: str = Field(default="test", max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    prompts: Prompts = Field(
        default=None,
        description="Prompt templates with `{c}` for the class name, or an ensemble's name: "
        "`paper` (the dataset's single template, the default), `clip_imagenet_80` (CLIP's 80 "
        "ImageNet templates), `clip_benchmark` (CLIP_benchmark's templates for the dataset) "
        "or `clip_benchmark:<key>`.",
        examples=[["a photo of a {c}."], "clip_imagenet_80"],
    )


class EmbedShardParams(_Params):
    """Rows ``start``..``stop`` of an `embed` job's split, embedded by a child of that job into
    artifact key ``key`` with the parent's batch size (`workers.tasks.shards`)."""

    type: Literal["embed_shard"] = "embed_shard"
    model_id: str = Field(max_length=40)
    dataset_id: str = Field(max_length=40)
    split: str = Field(default="test", max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    prompts: Prompts = None
    index: int = Field(ge=0, description="The shard's place among its parent's shards.")
    start: int = Field(ge=0, description="First row of the split (a multiple of batch_size).")
    stop: int = Field(ge=1, description="One past the last row.")
    batch_size: int = Field(ge=1)
    key: str = Field(max_length=200, description="Artifact key of the shard's run directory.")


class ScoreParams(_Params):
    """Compute measures on stored embeddings of (model, dataset, split)."""

    type: Literal["score"] = "score"
    model_id: str = Field(max_length=40)
    dataset_id: str = Field(max_length=40)
    split: str = Field(default="test", max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    prompts: Prompts = Field(
        default=None, description="The prompts of the embeddings to score (as in `embed`)."
    )
    measures: list[str] | None = Field(
        default=None, max_length=64, description="Measure names; default: the O(n·d) family."
    )
    bootstrap: int = Field(
        default=0,
        ge=0,
        le=2000,
        description="Bootstrap resamples for 95% intervals of IIMM and its terms (0: none; "
        "200 is plenty).",
    )
    replace: bool = Field(
        default=False,
        description="Replace stored scores of this model, dataset and split that were "
        "computed with other prompts (without it such a job is refused with 409; scores "
        "with the same prompts are always recomputed in place).",
    )


class MeasuresParams(_Params):
    """Measures of caller-supplied embeddings stored as an npz artifact."""

    type: Literal["measures"] = "measures"
    artifact: str = Field(max_length=500)
    measures: list[str] | None = None
    variant: Variant = "definition"


class ZeroShotAccuracy(BaseModel):
    """Zero-shot classification of the split's images by their classes' prompts (0..1;
    null where undefined, e.g. an empty split). Other keys may follow."""

    model_config = ConfigDict(extra="allow")

    top1: float | None = Field(default=None, description="Top-1 accuracy.")
    top5: float | None = Field(
        default=None, description="Top-5 accuracy (top-k with k = classes when fewer than 5)."
    )
    mean_per_class_recall: float | None = Field(
        default=None, description="Mean over the classes present of each class's top-1 recall."
    )


class EmbedTiming(BaseModel):
    """Where an embed job's time went (seconds of wall time). Other keys may follow.

    A sharded job's figures are its shards' summed (`seconds` is then worker time, not wall
    time, and `images_per_second` one worker's rate), with `shards`, `merge_s` and
    `critical_path_s` added; each shard's own are in `result.shards[].timing`."""

    model_config = ConfigDict(extra="allow")

    images: int = Field(description="Images embedded.")
    seconds: float = Field(description="Wall time of the embedding loop.")
    images_per_second: float
    batches: int | None = None
    workers: int | None = Field(default=None, description="Decoding processes.")
    device: str | None = Field(default=None, examples=["cuda:0", "cpu"])
    loader_s: float | None = Field(
        default=None, description="Waiting for decoded batches (add decoding workers)."
    )
    submit_s: float | None = Field(default=None, description="Host side of the forward pass.")
    device_s: float | None = Field(default=None, description="Waiting for the accelerator.")
    store_s: float | None = Field(default=None, description="Writing the embeddings.")
    shards: int | None = Field(
        default=None, description="Sharded job: how many shards' loops the figures sum."
    )
    merge_s: float | None = Field(
        default=None,
        description="Sharded job: merging the shards into one run (null: another job had "
        "stored the embedding meanwhile, nothing was merged).",
    )
    critical_path_s: float | None = Field(
        default=None,
        description="Sharded job: the slowest shard's loop plus the merge, the least wall "
        "time with one worker per shard (model loads and queueing left out; the job's "
        "`created_at`/`finished_at` give the elapsed time).",
    )


class EmbedShard(BaseModel):
    """One shard of a sharded `embed` job: a child job that embedded rows `rows` of the split."""

    index: int
    rows: list[int] = Field(description="[start, stop) of the split's rows.")
    job_id: str
    worker: str | None = Field(description="The worker that ran it (host:pid).")
    timing: EmbedTiming | None = None


class EmbedResult(NamedResult):
    """What an `embed` job stored: the embedding's id, its size and zero-shot accuracy."""

    type: Literal["embed"] = "embed"
    embedding_id: str
    n: int = Field(description="Images embedded.")
    zero_shot: ZeroShotAccuracy
    reused: bool = Field(default=False, description="True when stored embeddings were reused.")
    timing: EmbedTiming | None = Field(
        default=None,
        description="Where the time went; null when nothing was embedded by this job (reused). "
        "Embedded in shards: the shards' figures summed, with the merge's (each shard's own "
        "are in `shards`).",
    )
    warnings: list[str] = Field(
        default=[],
        description="What the embeddings rest on: prompts truncated by the tokenizer, classes "
        "whose truncated prompts are identical, classes with fewer than 2 images in the split.",
    )
    prompts: dict[str, Any] | None = Field(
        default=None,
        description="`context_length`, `truncated_classes` and `colliding_classes` (groups of "
        "classes whose prompts are identical once truncated).",
    )
    shards: list[EmbedShard] | None = Field(
        default=None,
        description="On a split of more than `IIMM_EMBED_SHARD_THRESHOLD` images: the child "
        "jobs that embedded it, one range of rows each, merged into the same arrays and "
        "statistics as one worker's run; null when one job embedded it all.",
    )


class ConfidenceInterval(BaseModel):
    """A percentile-bootstrap interval of one measure (`app.measures.bootstrap_ci`)."""

    ci_low: float | None = Field(description="Lower bound (2.5th percentile of the replicates).")
    ci_high: float | None = Field(description="Upper bound (97.5th percentile of the replicates).")


class ScoreResult(NamedResult):
    """The measures a `score` job stored (null where undefined), with the sample size."""

    type: Literal["score"] = "score"
    measures: dict[str, float | None]
    reasons: dict[str, str] = Field(
        default={}, description="Why each null measure is undefined on these data."
    )
    warnings: list[str] = Field(default=[], description="What the values rest on.")
    n: int
    zero_shot_accuracy: float | None
    intervals: dict[str, ConfidenceInterval] = Field(
        default={},
        description="95% bootstrap intervals of IIMM and its terms, by measure name, when the "
        "job asked for `bootstrap` resamples (also `ci_low`/`ci_high` in `/v1/scores`).",
    )


class MeasuresJobResult(JobResult):
    """Measures of caller-supplied embeddings (a large `POST /v1/measures`)."""

    type: Literal["measures"] = "measures"
    measures: dict[str, float | None]
    reasons: dict[str, str] = Field(
        default={}, description="Why each null measure is undefined on these data."
    )
    variant: str = Field(
        default="definition", description="How the transferability baselines were computed."
    )
    n: int
    k: int
    dim: int


def _check_embed(session: Session, project_id: str, params: BaseModel) -> None:
    assert isinstance(params, EmbedParams)
    check_refs(
        session, project_id, params.model_id, params.dataset_id, params.split, params.prompts
    )


def _check_score(session: Session, project_id: str, params: BaseModel) -> None:
    assert isinstance(params, ScoreParams)
    check_refs(
        session, project_id, params.model_id, params.dataset_id, params.split, params.prompts
    )
    if params.measures:
        from app.measures import check_names

        try:
            check_names(params.measures)
        except ValueError as exc:
            raise InvalidError(str(exc)) from None
    found = session.scalar(
        select(Embedding.id).where(
            Embedding.model_id == params.model_id,
            Embedding.dataset_id == params.dataset_id,
            Embedding.split == params.split,
            Embedding.prompts_hash == prompts_hash(params.prompts),
        )
    )
    if found is None:
        raise ConflictError(
            f"no embeddings of dataset {params.dataset_id} split {params.split!r} with model"
            f" {params.model_id}: submit an embed job first and wait for it to succeed"
        )
    if not params.replace:
        refuse_other_prompts(session, params)


def scores_with_other_prompts(session: Session, params: ScoreParams) -> list[Score]:
    """Stored scores a `score` job would replace that rest on other prompts than its own
    (the measures it computes, of its model, dataset and split)."""
    from app.measures import FAST_MEASURES

    return list(
        session.scalars(
            select(Score).where(
                Score.model_id == params.model_id, Score.dataset_id == params.dataset_id,
                Score.split == params.split,
                Score.measure.in_(list(params.measures or FAST_MEASURES)),
                Score.prompts_hash != prompts_hash(params.prompts),
            ).order_by(Score.id)
        )
    )  # fmt: skip


def refuse_other_prompts(session: Session, params: ScoreParams) -> None:
    """409 naming a stored score (and its prompts) that the job would replace although it
    was computed with other prompts; the caller passes `replace: true` to replace it."""
    other = scores_with_other_prompts(session, params)
    if other:
        first = other[0]
        raise ConflictError(
            f"{len(other)} stored score(s) of model {params.model_id}, dataset"
            f" {params.dataset_id}, split {params.split!r} were computed with other prompts,"
            f" e.g. {first.id} ({first.measure}) with prompts"
            f" {_describe(first.prompts)}; this job's prompts are"
            f" {_describe(params.prompts)}: pass \"replace\": true (CLI: --param"
            " replace=true) to replace them",
            extensions={"score_id": first.id, "prompts": first.prompts,
                        "prompts_hash": first.prompts_hash},
        )  # fmt: skip


def _describe(prompts: list[str] | str | None) -> str:
    if not prompts:
        return "the default (paper)"
    if isinstance(prompts, str):
        return repr(prompts)
    return f"{len(prompts)} template(s) {prompts!r}"[:300]


def _score_links(job_id: str, params: dict[str, Any], _: dict[str, Any] | None) -> dict[str, str]:
    query = f"model_id={params['model_id']}&dataset_id={params['dataset_id']}"
    return {
        "model": f"/v1/models/{params['model_id']}",
        "dataset": f"/v1/datasets/{params['dataset_id']}",
        "scores": f"/v1/scores?{query}&split={params.get('split', 'test')}",
    }


EMBED = JobType("embed", EmbedParams, "gpu", _check_embed, _score_links, result=EmbedResult)
SCORE = JobType("score", ScoreParams, "cpu", _check_score, _score_links, result=ScoreResult)
MEASURES = JobType("measures", MeasuresParams, "cpu", internal=True, result=MeasuresJobResult)
EMBED_SHARD = JobType("embed_shard", EmbedShardParams, "gpu", internal=True)


# The internal `ingest` job (here, not in app.datasets: that domain creates it through
# app.jobs.service). `POST /v1/datasets:upload` stores the archive under `uploads/<id>` and
# `POST /v1/datasets` records the reference; both create the dataset `validating` and one
# `ingest` job on the CPU queue (`workers.tasks.ingest`), which makes it `ready` or `failed`
# (its `error` is the problem a synchronous request would have answered: 422, 413, 409).


class IngestParams(BaseModel):
    """Validate dataset `dataset_id` (created `validating` by the upload or registration)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["ingest"] = "ingest"
    dataset_id: str = Field(max_length=40, examples=["dst_0193c0ffee00a1b2c3d4e5f6"])
    allow_duplicate: bool = Field(
        default=False,
        description="Register it even when a dataset of the project has the same content.",
    )


class IngestResult(JobResult):
    """What an `ingest` job found: the dataset's classes and split sizes."""

    type: Literal["ingest"] = "ingest"
    dataset_id: str
    dataset_name: str | None = Field(default=None, description="The dataset's name.")
    class_names: list[str] = Field(default=[], description="The classes, in label order.")
    splits: dict[str, int] = Field(default={}, description="Images per split.")


def _links(job_id: str, params: dict[str, Any], _: dict[str, Any] | None) -> dict[str, str]:
    return {"dataset": f"/v1/datasets/{params['dataset_id']}"}


INGEST = JobType("ingest", IngestParams, "cpu", links=_links, internal=True, result=IngestResult)
