"""Which gain predictor a summary leads with: the one `by` asks for, or for `best` the one whose
measure the comparison of the base model and method ranks highest.

`GET /v1/rankings` and the `assess` job both choose here, so a ranking row and an assessment
of the same dataset name the same predictor. The comparison itself is computed by
`app.comparisons` (which imports this package); it reaches this module as a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class NoComparison:
    """What keeps the comparison of a base model and method from ranking any measure:
    `tasks` usable fine-tuned tasks (:data:`MIN_TASKS` needed), of which `scored` have
    zero-shot scores (None: not counted)."""

    tasks: int
    scored: int | None = None


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


def ood_change_by(chosen: Predictor | None, stale: Collection[str] = ()) -> str | None:
    """Which predictor an `ood_change` comes from (`headline`'s: IIMM's first), its measure
    and task count, and that `by` does not choose it (the comparison ranks measures against
    gain, not forgetting); None without one."""
    if chosen is None:
        return None
    rule = ("IIMM's forgetting predictor" if chosen.feature == PREFERRED_FEATURE
            else f"no forgetting predictor on {PREFERRED_FEATURE}, so the one on "
                 f"{chosen.feature}")  # fmt: skip
    said = (f"ood_change from {chosen.id} ({chosen.feature}, fitted on {_tasks(chosen.n)}): "
            f"{rule}, whatever `by` says (the comparison ranks measures against gain, not "
            "forgetting)")  # fmt: skip
    return said + ("; it is stale: see stale_reason" if chosen.id in stale else "")


def _tasks(n: int) -> str:
    return f"{n} task{'' if n == 1 else 's'}"


def _used(chosen: Predictor, gains: list[Predictor], stale: Collection[str]) -> str:
    """How many tasks the chosen predictor was fitted on, and whether it is stale or was
    preferred to a newer stale one on the same measure."""
    same = [p for p in gains if p.feature == chosen.feature]
    said = f"fitted on {_tasks(chosen.n)}"
    if chosen.id in stale:
        others = "as is every other" if len(same) > 1 else "there is no other"
        return f"{said}; it is stale, {others} on {chosen.feature}: see stale_reason"
    newer = sum(p.id > chosen.id and p.id in stale for p in same)
    if newer:
        are = "s are" if newer > 1 else " is"
        said += f"; {newer} newer one{are} stale, so not used"
    return said


def _shortfall(comparison: Comparison | NoComparison | None) -> str:
    """Why there is no comparison to choose by, for the parenthesis after 'no comparison yet'."""
    if comparison is None:
        return f"it needs {MIN_TASKS} usable fine-tuned tasks"
    if isinstance(comparison, NoComparison):
        tasks, scored = comparison.tasks, comparison.scored
    else:
        tasks, scored = comparison.n_tasks, None
    if tasks < MIN_TASKS:
        return f"{tasks} of the {MIN_TASKS} usable fine-tuned tasks needed"
    if scored is not None and scored < MIN_TASKS:
        return f"{scored} of the {MIN_TASKS} tasks needed have scores"
    return f"no measure could be compared over its {_tasks(tasks)}: see GET /v1/comparisons"


def pick_gain_predictor(
    by: RankBy,
    gains: list[Predictor],
    method: str,
    comparison_of: Callable[[str], Comparison | NoComparison | None],
    stale: Collection[str] = (),
) -> tuple[Predictor | None, str]:
    """The gain predictor `by` picks among `gains` (one method's, each able to predict for
    the dataset), and why, in one sentence; (None, what is missing) when there is none.

    `comparison_of(method)` is the comparison of the base model with that method, or what
    keeps it from ranking any measure (:class:`NoComparison`; None: not known); it is asked
    only for `best`. Among several predictors on the same measure a fresh one (not in `stale`,
    the ids of the stale predictors) is preferred to a stale one, then the newest; a stale one
    is chosen only where every predictor on that measure is stale. The sentence names the
    number of tasks the chosen predictor was fitted on beside those of the comparison."""
    if by is not RankBy.best:
        feature = PREFERRED_FEATURE if by is RankBy.iimm else data.ZERO_SHOT
        found = newest((p for p in gains if p.feature == feature), stale).get((method, "gain"))
        if found is None:
            return None, (
                f"by={by.value}: no gain predictor on {feature} whose feature is known for this "
                f"dataset: fit one with POST /v1/predictors (feature {feature!r}) or use by=best"
            )
        return found, (
            f"by={by.value}: the gain predictor on {feature}, {_used(found, gains, stale)}"
        )
    if not gains:
        return None, "by=best: no gain predictor whose feature is known for this dataset"
    comparison = comparison_of(method)
    if comparison is None or isinstance(comparison, NoComparison) or not comparison.items:
        chosen = headline(gains, stale)[(method, "gain")]
        which = ("IIMM's gain predictor" if chosen.feature == PREFERRED_FEATURE
                 else f"the gain predictor on {chosen.feature} (none on IIMM)")  # fmt: skip
        return chosen, (
            f"by=best: no comparison yet ({_shortfall(comparison)}), so {which}, "
            f"{_used(chosen, gains, stale)}"
        )
    order = {c.measure: i for i, c in enumerate(comparison.items)}
    newest_first = sorted(gains, key=_order(stale), reverse=True)
    chosen = min(
        newest_first,
        key=lambda p: (order.get(p.feature, len(order)), p.feature != PREFERRED_FEATURE),
    )
    first = comparison.items[0]
    over = f"the comparison over {_tasks(comparison.n_tasks)} ranks {first.measure} first"
    used = f"the gain predictor used was {_used(chosen, gains, stale)}"
    if chosen.feature == first.measure:
        return chosen, f"by=best: {over} ({_rho(first)}); {used}"
    rank = order.get(chosen.feature)
    where = ("not in the comparison" if rank is None
             else f"ranked {rank + 1} of {len(order)}, {_rho(comparison.items[rank])}")  # fmt: skip
    return chosen, (
        f"by=best: {over} ({_rho(first)}) but it has no gain predictor usable here, so "
        f"{chosen.feature} ({where}); {used}"
    )


def _rho(item: ComparedMeasure) -> str:
    return "ρ vs G undefined" if item.spearman_gain is None else f"ρ vs G {item.spearman_gain:+.2f}"
