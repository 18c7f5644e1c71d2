"""Order (base model × fine-tuning method) candidates for one dataset by predicted accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .linear import LinearFit
from .piecewise import PiecewiseFit
from .predict import ImpliedAccuracy, Prediction, implied_accuracy_interval, predict

Fit = LinearFit | PiecewiseFit


@dataclass(frozen=True)
class Candidate:
    """What is known before fine-tuning ``base_model`` with ``method`` on the dataset.

    ``gain_fit`` predicts G from the measure; ``feature`` is that measure (e.g. IIMM) of the
    dataset under this base model; ``acc_zs`` its zero-shot accuracy. ``ood_change_fit``
    predicts the out-of-domain change from ``ood_change_feature`` (default: ``feature``).
    """

    base_model: str
    method: str
    gain_fit: Fit
    feature: float
    acc_zs: float
    ood_change_fit: Fit | None = None
    ood_change_feature: float | None = None


@dataclass(frozen=True)
class RankedCandidate:
    """A candidate's rank (1 = best), predicted accuracy, gain and out-of-domain change."""

    rank: int
    base_model: str
    method: str
    accuracy: ImpliedAccuracy
    gain: Prediction
    ood_change: Prediction | None


def _assess(
    candidate: Candidate, level: float
) -> tuple[ImpliedAccuracy, Prediction, Prediction | None]:
    gain = predict(candidate.gain_fit, candidate.feature, level=level)
    accuracy = implied_accuracy_interval(candidate.acc_zs, gain)
    ood_change = None
    if candidate.ood_change_fit is not None:
        x = (
            candidate.feature
            if candidate.ood_change_feature is None
            else candidate.ood_change_feature
        )
        ood_change = predict(candidate.ood_change_fit, x, level=level)
    return accuracy, gain, ood_change


def rank_candidates(
    candidates: Sequence[Candidate], *, level: float = 0.95
) -> list[RankedCandidate]:
    """Candidates sorted by predicted fine-tuned accuracy, best first, with intervals.

    Accuracy: ``clip(acc_zs + Ĝ·(1 − acc_zs), 0, 1)`` with Ĝ from :func:`predict`, the
    interval ends mapped alike. Ties break on the higher lower bound, then on
    (base_model, method) so the order is stable. Predicted forgetting is reported beside
    the accuracy for the user to weigh; it does not enter the order.
    """
    assessed = [(c, *_assess(c, level)) for c in candidates]
    assessed.sort(key=lambda t: (-t[1].value, -t[1].lower, t[0].base_model, t[0].method))
    return [
        RankedCandidate(
            rank=i + 1,
            base_model=c.base_model,
            method=c.method,
            accuracy=acc,
            gain=gain,
            ood_change=ood_change,
        )
        for i, (c, acc, gain, ood_change) in enumerate(assessed)
    ]
