"""`EmbedResult` (the typed result of an embed job) parses what the worker writes."""

from __future__ import annotations

import pytest


def test_embed_result_parses_what_the_worker_writes() -> None:
    """The worker's own figures (the embedding loop's timing, zero-shot metrics) validate,
    keep their extra keys, and a wrong type is refused."""
    import numpy as np
    from pydantic import ValidationError

    from app.jobs.types import EmbedResult
    from workers.ml.loop import Stages
    from workers.ml.zeroshot import zero_shot_metrics

    labels = np.array([0, 1, 1, 2])
    topk = np.array([[0, 1], [1, 0], [0, 1], [2, 0]])
    timing = {**Stages(images=4, batches=1).to_dict(workers=2), "device": "cpu", "extra": 1}
    result = EmbedResult(embedding_id="emb_1", n=4, timing=timing,
                         zero_shot=zero_shot_metrics(topk, labels, 3))  # fmt: skip
    assert result.zero_shot.top1 == 0.75 and result.zero_shot.mean_per_class_recall == 2.5 / 3
    assert result.timing is not None and result.timing.workers == 2
    assert result.model_dump()["timing"]["extra"] == 1
    with pytest.raises(ValidationError):
        EmbedResult(embedding_id="emb_1", n=4, zero_shot={"top1": "high"})
