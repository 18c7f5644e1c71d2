"""The `score` job: every requested measure of stored embeddings, one row per measure."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db import new_id, session_scope
from app.imagedata.prompts import prompts_hash
from app.jobs.types import ScoreParams
from app.models import Embedding, Score
from workers.tasks.base import JobContext, JobError, Outcome
from workers.tasks.datasets import load_rows, ref_names


def _embedding(ctx: JobContext, p: ScoreParams) -> dict[str, Any]:
    with session_scope(ctx.sessions) as session:
        row = session.scalar(
            select(Embedding).where(
                Embedding.project_id == ctx.project_id, Embedding.model_id == p.model_id,
                Embedding.dataset_id == p.dataset_id, Embedding.split == p.split,
                Embedding.prompts_hash == prompts_hash(p.prompts),
            )
        )  # fmt: skip
        if row is None:
            raise JobError("no stored embeddings for this model, dataset and split: embed first")
        return {"id": row.id, "uri": row.uri, "n": row.n, "zero_shot": row.zero_shot}


def _refuse_other_prompts(ctx: JobContext, p: ScoreParams) -> None:
    """Fail (JobError, the submission's 409 detail) if stored scores this job would replace
    rest on other prompts and the job did not ask to replace them."""
    from app.errors import ConflictError
    from app.jobs.types import refuse_other_prompts

    with session_scope(ctx.sessions) as session:
        try:
            refuse_other_prompts(session, p)
        except ConflictError as exc:
            raise JobError(exc.detail) from None


def zero_shot_top1(zero_shot: dict[str, Any]) -> float | None:
    """The top-1 zero-shot accuracy from an embedding's metadata, whatever its key."""
    for key in ("top1", "accuracy", "zero_shot_accuracy", "acc1", "top1_accuracy"):
        value = zero_shot.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _load(ctx: JobContext, uri: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The embeddings and the warnings their meta.json carries (truncated prompts, classes
    that collide, classes with fewer than 2 images)."""
    root = ctx.storage.local_dir(uri)
    arrays = [
        np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        for name in ("images", "texts", "labels")
    ]
    try:
        warnings = list(json.loads((root / "meta.json").read_text()).get("warnings", []))
    except (OSError, ValueError):
        warnings = []
    return arrays[0], arrays[1], np.asarray(arrays[2], dtype=np.int64), warnings


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _intervals(
    images: np.ndarray, texts: np.ndarray, labels: np.ndarray, n_boot: int
) -> tuple[dict[str, Any], list[str]]:
    """Bootstrap intervals, or none with a warning when the data cannot be resampled."""
    from app.measures import bootstrap_ci

    if not n_boot:
        return {}, []
    try:
        return bootstrap_ci(images, texts, labels, n_boot=n_boot), []
    except ValueError as exc:
        return {}, [f"no bootstrap intervals: {exc}"]


def run_score(ctx: JobContext) -> Outcome:
    """Compute the measures; rows are replaced, so a rerun leaves exactly one row per measure
    (rows computed with other prompts only when the job says `replace`).

    An undefined measure is stored as null with its reason and never fails the others; what
    the values rest on (truncated prompts, colliding classes, tiny classes) is a warning on
    every row and in the result.
    """
    from app.measures import measure_report

    p = ScoreParams.model_validate({"type": "score", **ctx.params})
    if not p.replace:  # scores with other prompts stored since the submission's check
        _refuse_other_prompts(ctx, p)
    emb = _embedding(ctx, p)
    names = ref_names(*load_rows(ctx, p.model_id, p.dataset_id))
    images, texts, labels, warnings = _load(ctx, emb["uri"])
    ctx.progress(0.1, "computing measures")
    try:
        report = measure_report(images, texts, labels, names=p.measures)
    except ValueError as exc:
        raise JobError(f"cannot compute measures: {exc}") from None
    ctx.progress(0.6, "bootstrap" if p.bootstrap else "writing")
    cis, ci_warnings = _intervals(images, texts, labels, p.bootstrap)
    warnings = warnings + ci_warnings
    values, reasons = report.values, report.reasons
    acc = zero_shot_top1(emb["zero_shot"])
    rows = [
        Score(
            id=new_id("scr"), project_id=ctx.project_id, model_id=p.model_id,
            dataset_id=p.dataset_id, split=p.split, measure=name, value=_finite(value),
            reason=reasons.get(name), warnings=warnings,
            ci_low=_finite(cis[name][1]) if name in cis else None,
            ci_high=_finite(cis[name][2]) if name in cis else None,
            n=emb["n"], zero_shot_accuracy=acc, embedding_id=emb["id"], job_id=ctx.job_id,
            prompts=p.prompts, prompts_hash=prompts_hash(p.prompts),
        )
        for name, value in values.items()
    ]  # fmt: skip

    def write(session: Session) -> None:
        session.execute(
            delete(Score).where(
                Score.model_id == p.model_id, Score.dataset_id == p.dataset_id,
                Score.split == p.split, Score.measure.in_(list(values)),
            )
        )  # fmt: skip
        session.add_all(rows)

    intervals = {r.measure: {"ci_low": r.ci_low, "ci_high": r.ci_high} for r in rows
                 if r.measure in cis}  # fmt: skip
    result = {"measures": {k: _finite(v) for k, v in values.items()}, "reasons": reasons,
              "intervals": intervals,
              "warnings": warnings, "n": emb["n"], "zero_shot_accuracy": acc, **names}  # fmt: skip
    return Outcome(result, write)
