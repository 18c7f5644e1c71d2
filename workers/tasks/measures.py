"""The internal `measures` job: large `POST /v1/measures` inputs, computed off the API."""

from __future__ import annotations

import io

from app.jobs.types import MeasuresParams
from workers.tasks.base import JobContext, JobError, Outcome


def run_measures(ctx: JobContext) -> Outcome:
    """Load the stored npz (no pickles) and compute; the values go in the job's result."""
    from app.errors import AppError
    from app.measure_requests.service import check_arrays, compute, load_npz

    p = MeasuresParams.model_validate({"type": "measures", **ctx.params})
    with ctx.storage.fs.open(ctx.storage.path(f"{p.artifact}/embeddings.npz"), "rb") as fh:
        data = io.BytesIO(fh.read()).getvalue()
    try:
        arrays = load_npz(data)
        n, k, d = check_arrays(arrays)
        ctx.progress(0.2, "computing measures")
        values, reasons = compute(arrays, p.measures, p.variant)
    except AppError as exc:
        raise JobError(exc.detail) from None
    return Outcome(
        {"measures": values, "reasons": reasons, "variant": p.variant, "n": n, "k": k, "dim": d}
    )
