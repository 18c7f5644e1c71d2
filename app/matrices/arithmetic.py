"""The matrix's per-row figures (pure; no I/O): learning and forgetting of one fine-tuning.

- Gain over zero-shot error on the training task t:
  ``G = (acc_ft(t) − acc_zs(t)) / (1 − acc_zs(t))``.
- Out-of-domain change: the mean over every other task j of ``acc_ft(j) − acc_zs(j)``; a
  dataset with the same content as t (a duplicate registration) is not another task.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def gain_over_zero_shot_error(acc_ft: float | None, acc_zs: float | None) -> float | None:
    """``(acc_ft − acc_zs) / (1 − acc_zs)``; None when an input is missing or ``acc_zs == 1``."""
    if acc_ft is None or acc_zs is None or acc_zs >= 1.0:
        return None
    return (acc_ft - acc_zs) / (1.0 - acc_zs)


def out_of_domain_change(
    finetuned: Mapping[str, float],
    zero_shot: Mapping[str, float],
    train_task: str,
    same_content: Collection[str] = (),
) -> float | None:
    """Mean of ``acc_ft(j) − acc_zs(j)`` over the tasks j ≠ `train_task` present in both,
    leaving out `same_content` (datasets identical to the training task); None when there
    is no such task."""
    skip = {train_task, *same_content}
    diffs = [finetuned[j] - zero_shot[j] for j in finetuned if j not in skip and j in zero_shot]
    return sum(diffs) / len(diffs) if diffs else None


def low_error_flag(acc_zs: float | None, min_error: float) -> str | None:
    """Why G of a task is unstable, or None: its zero-shot error is below `min_error`."""
    if acc_zs is None or 1.0 - acc_zs >= min_error:
        return None
    return (
        f"zero-shot error {1.0 - acc_zs:.3f} is below min_zero_shot_error {min_error:g}: "
        "G = (acc_ft − acc_zs)/(1 − acc_zs) divides by it, so gain predictors leave this row out"
    )


def row_figures(
    finetuned: Mapping[str, float],
    zero_shot: Mapping[str, float],
    train_task: str,
    same_content: Collection[str] = (),
) -> tuple[float | None, float | None]:
    """(in-domain gain G, out-of-domain change) of one fine-tuned model's accuracies."""
    gain = gain_over_zero_shot_error(finetuned.get(train_task), zero_shot.get(train_task))
    return gain, out_of_domain_change(finetuned, zero_shot, train_task, same_content)
