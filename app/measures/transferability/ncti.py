"""NCTI (Wang et al., ICCV 2023): Neural Collapse inspired Transferability Index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, IntArray, pca_project, singular_values, validate
from .sfda import fit_regularised_fda


@dataclass(frozen=True)
class NCTITerms:
    """The three neural-collapse proxies of one model on one dataset (paper's raw terms).

    - ``seli``: nuclear norm of the centred Fisher-space features (simplex encoded label
      interpolation geometry: larger = classes spread over more equally used directions);
    - ``ncc``: mean posterior of the true class under the nearest-centre (Fisher-space
      Gaussian) classifier, in [0, 1];
    - ``vc``: log of the summed nuclear norms of each class's posterior matrix
      (within-class variability: smaller = predictions of a class collapsed to one point);
    - ``seli_normalised`` = seli / (||H||_F sqrt(r)) in (0, 1] and ``vc_normalised`` =
      log(sum_c ||P_c||_* / sum_c sqrt(n_c)): the size- and scale-free forms used by
      :func:`ncti` for a single model.
    """

    seli: float
    ncc: float
    vc: float
    seli_normalised: float
    vc_normalised: float


def _terms_from_arrays(
    x: FloatArray, y: IntArray, k: int, counts: IntArray, pca_dim: int | None, a: float
) -> NCTITerms:
    """PCA (optional), regularised Fisher projection, then the three terms."""
    if pca_dim is not None:
        x = pca_project(x, pca_dim)
    model = fit_regularised_fda(x, y, k, a=a)
    h = model.transform(x)
    h = h - h.mean(axis=0)
    singular = singular_values(h)
    seli = float(singular.sum())
    frobenius = float(np.sqrt(np.sum(singular**2)))
    proba = model.predict_proba(x)
    ncc = float(np.mean(proba[np.arange(y.size), y]))
    class_nuclear = sum(float(singular_values(proba[y == c]).sum()) for c in range(k))
    seli_norm = seli / (frobenius * np.sqrt(h.shape[1])) if frobenius > 0 else 0.0
    vc_norm = float(np.log(class_nuclear / np.sum(np.sqrt(counts))))
    return NCTITerms(seli, ncc, float(np.log(class_nuclear)), float(seli_norm), vc_norm)


def ncti_terms(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    pca_dim: int | None = 64,
    a: float = 5.0,
) -> NCTITerms:
    """Compute the three NCTI terms (see :class:`NCTITerms`) of one model.

    The features are optionally reduced by PCA to ``pca_dim`` dimensions (default 64, for
    speed and a well-conditioned scatter; None keeps them), then projected into the
    regularised Fisher space of SFDA (k - 1 dimensions; ``a`` as in :func:`sfda`).
    """
    data = validate(features, labels, method="ncti")
    return _terms_from_arrays(data.features, data.labels, data.n_classes, data.counts, pca_dim, a)


def ncti(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    pca_dim: int | None = 64,
    a: float = 5.0,
) -> float:
    """Per-model ("raw") NCTI, after Wang et al., "How Far Pre-trained Models Are from Neural
    Collapse on the Target Dataset Informs their Transferability", ICCV 2023.

    The paper scores a *set* of candidate models: each term is min-max normalised across the
    candidates and ``NCTI = S_seli + S_ncc - S_vc`` (see :func:`ncti_relative`). A single
    model has nothing to normalise against, so this default form puts the same three terms on
    fixed, size- and scale-free scales and combines them with the paper's signs::

        NCTI_raw = ||H||_* / (||H||_F sqrt(r))  +  mean_i p(y_i|x_i)
                   - log( sum_c ||P_c||_* / sum_c sqrt(n_c) )

    with H the centred Fisher-space features (r = k - 1 columns), P_c the posterior matrix
    of class c (``||P_c||_* = sqrt(n_c)`` when a class collapses onto one-hot predictions).
    The first term is 1 for equally used directions (simplex-like), the second is in [0, 1].
    Higher is more transferable. Raw values are comparable across models on one dataset but
    are not the paper's normalised numbers. Labels may be arbitrary.
    """
    terms = ncti_terms(features, labels, pca_dim=pca_dim, a=a)
    return float(terms.seli_normalised + terms.ncc - terms.vc_normalised)


def _min_max(values: FloatArray) -> FloatArray:
    spread = values.max() - values.min()
    if spread <= 0:
        return np.zeros_like(values)
    return (values - values.min()) / spread


def ncti_relative(
    candidates: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    pca_dim: int | None = 64,
    a: float = 5.0,
) -> list[float]:
    """NCTI as defined in the paper, relative to a set of candidate models.

    ``candidates`` holds one ``(features, labels)`` pair per model (same target dataset).
    Each raw term (``seli``, ``ncc``, ``vc`` of :class:`NCTITerms`) is min-max normalised
    across the candidates and ``NCTI_m = S_seli,m + S_ncc,m - S_vc,m``, so every score lies
    in [-1, 2]; a term equal for all candidates contributes 0. Needs at least 2 candidates.
    """
    if len(candidates) < 2:
        raise ValueError(f"ncti_relative needs at least 2 candidate models, got {len(candidates)}")
    terms = [ncti_terms(f, y, pca_dim=pca_dim, a=a) for f, y in candidates]
    seli = _min_max(np.array([t.seli for t in terms]))
    ncc = _min_max(np.array([t.ncc for t in terms]))
    vc = _min_max(np.array([t.vc for t in terms]))
    return [float(v) for v in seli + ncc - vc]
