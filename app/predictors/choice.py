"""Which gain predictor a summary leads with: the one `by` asks for, or for `best` the one whose
measure the comparison of the base model and method ranks highest.

`GET /v1/rankings` and the `assess` job both choose here, so a ranking row and an assessment
of the same dataset name the same predictor. The comparison itself is computed by
`app.comparisons` (which imports this package); it reaches this module as a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from enum import StrEnum
from typing import Protocol

from app.models.predictors import Predictor
from app.predictors import data

PREFERRED_FEATURE = "iimm"
#: Fewest usable fine-tuned tasks a comparison of measures needs (`GET /v1/comparisons`).
MIN_TASKS = 3


class RankBy(StrEnum):
    """Which gain predictor a ranking orders the candidates by (and an assessment leads with)."""

    iimm = "iimm"
    zero_shot = "zero_shot"
    best = "best"


class ComparedMeasure(Protocol):
    """One measure of a comparison (`MeasureComparisonRead`)."""

    @property
    def measure(self) -> str: ...

    @property
    def spearman_gain(self) -> float | None: ...


class Comparison(Protocol):
    """A comparison of measures as predictors of G (`ComparisonRead`), best first."""

    @property
    def n_tasks(self) -> int: ...

    @property
    def items(self) -> Sequence[ComparedMeasure]: ...

    @property
    def best_measure(self) -> str | None: ...


def _order(stale: Collection[str]) -> Callable[[Predictor], tuple[bool, str]]:
    """Sort key putting the predictor to prefer last: fresh (not in `stale`) before stale,
    then the newest (ids grow with creation)."""
    return lambda p: (p.id not in stale, p.id)


def headline(
    predictors: Iterable[Predictor], stale: Collection[str] = ()
) -> dict[tuple[str, str], Predictor]:
    """Per (method, target), the predictor a summary uses: IIMM first, then a fresh one (not
    in `stale`, the ids of the stale predictors) before a stale one, then the newest."""
    best: dict[tuple[str, str], Predictor] = {}
    fresh_newest = _order(stale)
    for p in sorted(predictors, key=lambda p: (p.feature == PREFERRED_FEATURE, fresh_newest(p))):
        best[(p.method, p.target)] = p
    return best


def newest(
    predictors: Iterable[Predictor], stale: Collection[str] = ()
) -> dict[tuple[str, str], Predictor]:
    """Per (method, target), the newest fresh one of `predictors` (not in `stale`, the ids
    of the stale predictors); the newest stale one where all are stale."""
    return {(p.method, p.target): p for p in sorted(predictors, key=_order(stale))}


def pick_gain_predictor(
    by: RankBy,
    gains: list[Predictor],
    method: str,
    comparison_of: Callable[[str], Comparison | None],
    stale: Collection[str] = (),
) -> tuple[Predictor | None, str]:
    """The gain predictor `by` picks among `gains` (one method's, each able to predict for
    the dataset), and why, in one sentence; (None, what is missing) when there is none.

    `comparison_of(method)` is the comparison of the base model with that method, None when
    there is none (fewer than :data:`MIN_TASKS` usable fine-tuned tasks); it is asked only
    for `best`. Among several predictors on the same measure a fresh one (not in `stale`, the
    ids of the stale predictors) is preferred to a stale one, then the newest; a stale one is
    chosen only where every predictor on that measure is stale."""
    if by is not RankBy.best:
        feature = PREFERRED_FEATURE if by is RankBy.iimm else data.ZERO_SHOT
        found = newest((p for p in gains if p.feature == feature), stale).get((method, "gain"))
        if found is None:
            return None, (
                f"by={by.value}: no gain predictor on {feature} whose feature is known for this "
                f"dataset: fit one with POST /v1/predictors (feature {feature!r}) or use by=best"
            )
        return found, f"by={by.value}: the newest gain predictor on {feature}"
    if not gains:
        return None, "no gain predictor whose feature is known for this dataset"
    comparison = comparison_of(method)
    if comparison is None:
        chosen = headline(gains, stale)[(method, "gain")]
        which = ("IIMM's" if chosen.feature == PREFERRED_FEATURE
                 else f"the newest ({chosen.feature}; none on IIMM)")  # fmt: skip
        return chosen, (
            f"by=best: no comparison of this base model and method (it needs {MIN_TASKS} usable "
            f"fine-tuned tasks), so {which} gain predictor"
        )
    order = {c.measure: i for i, c in enumerate(comparison.items)}
    newest_first = sorted(gains, key=_order(stale), reverse=True)
    chosen = min(
        newest_first,
        key=lambda p: (order.get(p.feature, len(order)), p.feature != PREFERRED_FEATURE),
    )
    item = next((c for c in comparison.items if c.measure == chosen.feature), None)
    said = ("not in the comparison" if item is None or item.spearman_gain is None
            else f"ρ vs G {item.spearman_gain:+.2f}")  # fmt: skip
    why = (
        f"by=best: over {comparison.n_tasks} tasks the comparison ranks {chosen.feature} "
        f"({said}) first among this method's gain predictors"
    )
    if comparison.best_measure not in (None, chosen.feature):
        why += f"; it names {comparison.best_measure} best, which has no gain predictor usable here"
    return chosen, why
