"""The matrix arithmetic (G and the out-of-domain change) against an independent numpy
computation, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from app.matrices.arithmetic import (
    gain_over_zero_shot_error,
    out_of_domain_change,
    row_figures,
)


@pytest.mark.parametrize("seed", range(5))
def test_rows_match_numpy(seed: int) -> None:
    """A full k×k matrix: G from the diagonal, ood from the off-diagonal means."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    zs = rng.uniform(0, 0.95, k)
    ft = rng.uniform(0, 1, (k, k))
    gains = (np.diag(ft) - zs) / (1 - zs)
    off = ~np.eye(k, dtype=bool)
    ood = np.array([(ft[i] - zs)[off[i]].mean() for i in range(k)])
    names = [f"d{j}" for j in range(k)]
    zero_shot = dict(zip(names, zs.tolist(), strict=True))
    for i, train in enumerate(names):
        row = dict(zip(names, ft[i].tolist(), strict=True))
        gain, change = row_figures(row, zero_shot, train)
        assert gain == pytest.approx(gains[i], rel=1e-12)
        assert change == pytest.approx(ood[i], rel=1e-12, abs=1e-15)


def test_edge_cases() -> None:
    assert gain_over_zero_shot_error(0.9, 1.0) is None
    assert gain_over_zero_shot_error(None, 0.5) is None
    assert gain_over_zero_shot_error(0.5, 0.5) == 0.0
    assert gain_over_zero_shot_error(1.0, 0.2) == pytest.approx(1.0)
    # only the training task: no out-of-domain column
    assert out_of_domain_change({"a": 0.9}, {"a": 0.2}, "a") is None
    # columns missing on either side are left out of the mean
    assert out_of_domain_change(
        {"a": 0.9, "b": 0.5, "c": 0.1}, {"a": 0.2, "b": 0.6}, "a"
    ) == pytest.approx(-0.1)
    assert row_figures({}, {"a": 0.2}, "a") == (None, None)


def test_a_copy_of_the_training_task_is_not_out_of_domain() -> None:
    """A dataset with the training task's content (registered twice) is left out of the
    out-of-domain mean: forgetting is measured on other tasks."""
    ft, zs = {"a": 0.9, "a2": 0.88, "b": 0.5}, {"a": 0.2, "a2": 0.2, "b": 0.6}
    assert out_of_domain_change(ft, zs, "a", same_content={"a2"}) == pytest.approx(-0.1)
    assert row_figures(ft, zs, "a", {"a2"})[1] == pytest.approx(-0.1)
    assert out_of_domain_change(ft, zs, "a") == pytest.approx((0.68 - 0.1) / 2)
