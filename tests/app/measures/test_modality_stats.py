"""ModalityStats: shard merging, serialisation, and the contract the embedding engine uses."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import app.measures as am

KEYS = {
    "inter_modal",
    "intra_images",
    "intra_texts",
    "correct_alignment",
    "modality_gap",
    "iimm",
    "calinski_harabasz",
    "n",
}


def data(seed: int, n: int = 60, k: int = 4, d: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) + 0.4).astype(np.float16)
    return X, rng.standard_normal((k, d)), rng.integers(0, k, n)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 60), max_size=5))
def test_merging_shards_equals_the_whole(seed: int, cuts: list[int]) -> None:
    """Random splits, empty shards included, merged in order: the whole-dataset values."""
    X, T, y = data(seed)
    whole = am.ModalityStats(4, 5)
    whole.update(X, y)
    bounds = [0, *sorted(cuts), len(X)]
    merged = am.ModalityStats(4, 5)
    for lo, hi in itertools.pairwise(bounds):
        shard = am.ModalityStats(4, 5)
        shard.update(X[lo:hi], y[lo:hi])
        merged = merged.merge(shard)
    assert merged.n == whole.n == len(X)
    assert merged.result(T) == pytest.approx(whole.result(T), rel=1e-12, abs=1e-14)
    assert whole.result(T) == pytest.approx(
        am.compute_measures(X, T, y, list(KEYS - {"n"})) | {"n": 60}
    )


def test_result_keys_and_n() -> None:
    X, T, y = data(1)
    st_ = am.ModalityStats(4, 5)
    st_.update(X, y)
    out = st_.result(T)
    assert set(out) >= KEYS
    assert out["n"] == 60 and st_.n == 60
    assert all(isinstance(v, float) for v in out.values())


def test_merge_returns_a_new_object_and_leaves_inputs_alone() -> None:
    X, _, y = data(2)
    a, b = am.ModalityStats(4, 5), am.ModalityStats(4, 5)
    a.update(X[:30], y[:30])
    b.update(X[30:], y[30:])
    before = a.to_dict()
    c = a.merge(b)
    assert c is not a and c is not b
    assert a.to_dict() == before and c.n == 60


def test_to_dict_round_trips_exactly_through_json() -> None:
    X, T, y = data(3)
    st_ = am.ModalityStats(4, 5)
    st_.update(X, y)
    back = am.ModalityStats.from_dict(json.loads(json.dumps(st_.to_dict())))
    assert back.n == st_.n
    np.testing.assert_array_equal(back.class_sums, st_.class_sums)
    assert back.result(T) == st_.result(T)


def test_from_dict_rejects_foreign_dicts() -> None:
    with pytest.raises(ValueError, match="not a ModalityStats dict"):
        am.ModalityStats.from_dict({"counts": []})


def test_merge_of_different_shapes_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        am.ModalityStats(3, 5).merge(am.ModalityStats(4, 5))


def test_rejected_block_leaves_the_accumulator_unchanged() -> None:
    X, _, y = data(4)
    st_ = am.ModalityStats(4, 5)
    st_.update(X[:10], y[:10])
    before = st_.to_dict()
    bad = X[10:20].astype(np.float64)
    bad[3] = 0.0
    with pytest.raises(ValueError, match="images row 13 is a zero vector"):
        st_.update(bad, y[10:20], row_offset=10)
    assert st_.to_dict() == before


def test_result_needs_two_images_and_matching_texts() -> None:
    X, T, y = data(5)
    st_ = am.ModalityStats(4, 5)
    with pytest.raises(ValueError, match="at least 2 images"):
        st_.result(T)
    st_.update(X, y)
    with pytest.raises(ValueError, match=r"texts must have shape \(k=4, d=5\)"):
        st_.result(T[:3])


def test_update_checks_the_block() -> None:
    st_ = am.ModalityStats(4, 5)
    with pytest.raises(ValueError, match="images have dimension 3; this accumulator has 5"):
        st_.update(np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.3"):
        st_.update(np.ones((2, 5)), [0, 4])
    st_.update(np.ones((0, 5)), np.zeros(0, int))
    assert st_.n == 0
