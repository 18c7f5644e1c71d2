"""Invariances, orderings and validation of the transferability baselines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.measures.transferability import (
    emms,
    gbc,
    hscore,
    logme,
    ncti_relative,
    sfda,
    transrate,
)

Score = Callable[[np.ndarray, np.ndarray, np.ndarray], float]

# Every score in the call form the registry uses; the third argument is the label embeddings T.
SCORES: dict[str, Score] = {
    "transrate": lambda x, y, t: transrate(x, y),
    "transrate_iimm_reference": lambda x, y, t: transrate(x, y, variant="iimm_reference"),
    "transrate_authors": lambda x, y, t: transrate(x, y, variant="authors"),
    "sfda": lambda x, y, t: sfda(x, y),
    "sfda_iimm_reference": lambda x, y, t: sfda(x, y, variant="iimm_reference"),
    "emms": lambda x, y, t: emms(x, y, t),
    "emms_two_sources": lambda x, y, t: emms(x, y, [t, np.roll(t, 1, axis=1)]),
    "logme": lambda x, y, t: logme(x, y),
    "logme_authors": lambda x, y, t: logme(x, y, variant="authors"),
    "hscore": lambda x, y, t: hscore(x, y),
    "hscore_shrinkage": lambda x, y, t: hscore(x, y, shrinkage=True),
    "gbc": lambda x, y, t: gbc(x, y),
    "gbc_diagonal": lambda x, y, t: gbc(x, y, gaussian_type="diagonal"),
    "gbc_iimm_reference": lambda x, y, t: gbc(x, y, variant="iimm_reference"),
}
# EMMS indexes T with the labels, so it is invariant to relabelling only when T follows.
RELABEL_INVARIANT = [name for name in SCORES if not name.startswith("emms")]


def make_task(
    seed: int, n: int = 240, d: int = 12, k: int = 4, separation: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian classes around random centres, balanced labels, and label embeddings T."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    centres = rng.normal(size=(k, d)) * separation
    x = centres[y] + rng.normal(size=(n, d))
    t = np.concatenate([centres, rng.normal(size=(k, 4))], axis=1)
    return x, y, t


@pytest.mark.parametrize("name", list(SCORES))
def test_separated_classes_score_above_shuffled_labels(name: str) -> None:
    x, y, t = make_task(0)
    shuffled = np.random.default_rng(1).permutation(y)
    good = SCORES[name](x, y, t)
    bad = SCORES[name](x, shuffled, t)
    assert isinstance(good, float) and isinstance(bad, float)
    assert np.isfinite(good) and np.isfinite(bad)
    assert good > bad


@pytest.mark.parametrize("name", list(SCORES))
def test_better_separation_scores_higher(name: str) -> None:
    x_far, y, t = make_task(2, separation=4.0)
    x_near, _, _ = make_task(2, separation=0.7)
    assert SCORES[name](x_far, y, t) > SCORES[name](x_near, y, t)


@pytest.mark.parametrize("name", list(SCORES))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(24, 60), k=st.integers(2, 5))
def test_permuting_samples_changes_nothing(name: str, seed: int, n: int, k: int) -> None:
    x, y, t = make_task(seed, n=n, d=6, k=k, separation=1.0)
    order = np.random.default_rng(seed + 1).permutation(n)
    assert SCORES[name](x[order], y[order], t) == pytest.approx(
        SCORES[name](x, y, t), rel=1e-7, abs=1e-9
    )


@pytest.mark.parametrize("name", RELABEL_INVARIANT)
def test_relabelling_classes_changes_nothing(name: str) -> None:
    x, y, t = make_task(3, separation=1.0)
    relabel = np.array([2, 0, 3, 1])
    assert SCORES[name](x, relabel[y], t) == pytest.approx(SCORES[name](x, y, t), rel=1e-7)


@pytest.mark.parametrize("name", [n for n in SCORES if n.startswith("emms")])
def test_emms_relabelling_with_embeddings_changes_nothing(name: str) -> None:
    x, y, t = make_task(4, separation=1.0)
    relabel = np.array([2, 0, 3, 1])
    moved = np.empty_like(t)
    moved[relabel] = t
    assert SCORES[name](x, relabel[y], moved) == pytest.approx(SCORES[name](x, y, t), rel=1e-7)


@pytest.mark.parametrize("name", RELABEL_INVARIANT)
def test_arbitrary_label_values_are_remapped(name: str) -> None:
    x, y, t = make_task(5, separation=1.0)
    names = np.array(["cat", "dog", "emu", "yak"])[y]
    assert SCORES[name](x, names, t) == pytest.approx(SCORES[name](x, y, t), rel=1e-12)


@pytest.mark.parametrize("name", list(SCORES))
def test_inputs_are_not_modified(name: str, tmp_path: Path) -> None:
    x, y, t = make_task(6, separation=1.0)
    x32 = x.astype(np.float32)
    copies = (x32.copy(), y.copy(), t.copy())
    for array in (x32, y, t):
        array.flags.writeable = False
    SCORES[name](x32, y, t)
    np.testing.assert_array_equal(x32, copies[0])
    np.testing.assert_array_equal(y, copies[1])
    np.testing.assert_array_equal(t, copies[2])
    path = tmp_path / "x.npy"
    np.save(path, x.astype(np.float16))
    mapped = np.load(path, mmap_mode="r")
    assert SCORES[name](mapped, y, t) == pytest.approx(
        SCORES[name](np.asarray(mapped), y, t), rel=1e-12
    )
    np.testing.assert_array_equal(np.load(path), x.astype(np.float16))


@pytest.mark.parametrize("name", list(SCORES))
def test_float16_and_float64_agree(name: str) -> None:
    x, y, t = make_task(7, separation=1.0)
    full = SCORES[name](x, y, t)
    half = SCORES[name](x.astype(np.float16), y, t)
    single = SCORES[name](x.astype(np.float32), y, t)
    assert single == pytest.approx(full, rel=1e-4, abs=1e-6)
    assert half == pytest.approx(full, rel=2e-2, abs=1e-3)


def test_ncti_relative_normalises_across_candidates() -> None:
    x, y, _ = make_task(8)
    noisy = x + np.random.default_rng(9).normal(size=x.shape) * 4.0
    scores = ncti_relative([(x, y), (noisy, y)])
    assert scores[0] > scores[1]
    assert all(-1.0 <= s <= 2.0 for s in scores)
    assert ncti_relative([(x, y), (x.copy(), y)]) == [0.0, 0.0]
    published = ncti_relative([(x, y), (noisy, y)], variant="authors")
    assert published[0] > published[1]


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y, t: transrate(x, y, variant="paper"),
        lambda x, y, t: sfda(x, y, variant="code"),
        lambda x, y, t: emms(x, y, t, variant="x"),
        lambda x, y, t: logme(x, y, variant="iimm_reference"),
        lambda x, y, t: hscore(x, y, variant="other"),
        lambda x, y, t: gbc(x, y, variant="google"),
        lambda x, y, t: ncti_relative([(x, y), (x, y)], variant="paper"),
    ],
)
def test_unknown_variants_are_refused_with_the_valid_names(call: Callable) -> None:
    x, y, t = make_task(3)
    with pytest.raises(ValueError, match="variant must be 'definition'"):
        call(x, y, t)


VALIDATION_CASES = [
    (lambda x, y: (x[:-1], y), "different lengths"),
    (lambda x, y: (x, np.zeros_like(y)), "at least 2 classes"),
    (lambda x, y: (x[:1], y[:1]), "at least 2 samples"),
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x), y), "NaN"),
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.inf, x), y), "infinite"),
    (lambda x, y: (x[:, :, None], y), "2-D"),
    (lambda x, y: (x, y[:, None]), "1-D"),
]


@pytest.mark.parametrize("name", list(SCORES))
@pytest.mark.parametrize(("corrupt", "message"), VALIDATION_CASES)
def test_invalid_inputs_raise(name: str, corrupt: Callable, message: str) -> None:
    x, y, t = make_task(10, n=40)
    bad_x, bad_y = corrupt(x, y)
    with pytest.raises(ValueError, match=message):
        SCORES[name](bad_x, bad_y, t)


def test_emms_validation() -> None:
    x, y, t = make_task(11, n=40)
    with pytest.raises(ValueError, match="different lengths"):
        emms(x[:-1], y, t)
    with pytest.raises(ValueError, match=r"integers in 0\.\.3"):
        emms(x, y + 1, t)
    with pytest.raises(ValueError, match="non-negative"):
        emms(x, y - 1, t)
    with pytest.raises(ValueError, match="zero row"):
        emms(x, y, np.where(np.arange(4)[:, None] == 2, 0.0, t))
    with pytest.raises(ValueError, match="same shape"):
        emms(x, y, [t, t[:, :3]])
    with pytest.raises(ValueError, match="at least 2 classes"):
        emms(x, np.zeros_like(y), t)
    with pytest.raises(ValueError, match="label_embeddings contain NaN"):
        emms(x, y, np.full_like(t, np.nan))
    with pytest.raises(ValueError, match="integers indexing"):
        emms(x, y + 0.5, t)


def test_method_specific_validation() -> None:
    x, y, _ = make_task(12, n=40)
    lonely = y.copy()
    lonely[0] = 9
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        gbc(x, lonely)
    with pytest.raises(ValueError, match="gaussian_type"):
        gbc(x, y, gaussian_type="full")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variant"):
        transrate(x, y, variant="other")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps must be positive"):
        transrate(x, y, eps=0.0)
    with pytest.raises(ValueError, match="at least 2 candidate"):
        ncti_relative([(x, y)])


def test_variant_specific_refusals_say_what_to_use() -> None:
    x, y, _ = make_task(5)
    with pytest.raises(ValueError, match="no shrinkage H-score"):
        hscore(x, y, shrinkage=True, variant="iimm_reference")
    with pytest.raises(ValueError, match="IIMM paper's code has no LogME"):
        logme(x, y, variant="iimm_reference")  # type: ignore[arg-type]
    x[3] = 0.0
    with pytest.raises(ValueError, match="zero row"):
        transrate(x, y, variant="authors")
