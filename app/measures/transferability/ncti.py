"""NCTI (Wang et al., ICCV 2023): Neural Collapse inspired Transferability Index.

NCTI is defined relative to a set of candidate models (each term is min-max normalised across
them), so it is offered as :func:`ncti_relative`; :func:`ncti_terms` gives one model's raw
terms. There is no single-model NCTI: a per-model normalisation does not rank models as the
paper's NCTI does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import linalg

from ._common import (
    FloatArray,
    IntArray,
    class_means,
    pca_project,
    singular_values,
    softmax,
    validate,
)
from .sfda import fit_regularised_fda

NCTIVariant = Literal["definition", "iimm_reference", "authors"]
#: The published program: PCA to 64 dimensions, shrinkage exp(-sum of the top 32 variances).
PUBLISHED_PCA_DIM = 64
PUBLISHED_SHRINKAGE_TOP = 32
PUBLISHED_SHRINKAGE_FLOOR = 1e-10
#: scikit-learn's LinearDiscriminantAnalysis(solver="svd") rank tolerance.
SVD_SOLVER_TOL = 1e-4


@dataclass(frozen=True)
class NCTITerms:
    """The three neural-collapse proxies of one model on one dataset (the paper's raw terms).

    - ``seli``: nuclear norm of the centred Fisher-space features (simplex encoded label
      interpolation geometry: larger = classes spread over more equally used directions);
    - ``ncc``: mean posterior of the true class under the nearest-centre (Fisher-space
      Gaussian) classifier, in [0, 1];
    - ``vc``: log of the summed nuclear norms of each class's posterior matrix
      (within-class variability: smaller = predictions of a class collapsed to one point).
    """

    seli: float
    ncc: float
    vc: float


def _terms(h: FloatArray, proba: FloatArray, y: IntArray, k: int) -> NCTITerms:
    """The three terms from Fisher-space features h (n x r) and posteriors (n x k)."""
    h = h - h.mean(axis=0)
    seli = float(singular_values(h).sum())
    ncc = float(np.mean(proba[np.arange(y.size), y]))
    class_nuclear = sum(float(singular_values(proba[y == c]).sum()) for c in range(k))
    return NCTITerms(seli, ncc, float(np.log(class_nuclear)))


def _definition(x: FloatArray, y: IntArray, k: int, pca_dim: int | None, a: float) -> NCTITerms:
    """PCA (optional), SFDA's regularised Fisher projection, then the three terms."""
    if pca_dim is not None:
        x = pca_project(x, pca_dim)
    model = fit_regularised_fda(x, y, k, a=a)
    return _terms(model.transform(x), model.predict_proba(x), y, k)


def _shrunk(cov: FloatArray, shrinkage: float) -> FloatArray:
    """(1 - s) C + s (tr C / d) I."""
    d = cov.shape[0]
    return (1.0 - shrinkage) * cov + shrinkage * (np.trace(cov) / d) * np.eye(d)


def _gaussian_posteriors(
    x: FloatArray, means: FloatArray, coef: FloatArray, priors: FloatArray
) -> FloatArray:
    """softmax(x coef^T - 1/2 diag(means coef^T) + log priors)."""
    intercept = -0.5 * np.sum(means * coef, axis=1) + np.log(priors)
    return softmax(x @ coef.T + intercept)


def _shrinkage_lda(x: FloatArray, y: IntArray, k: int, shrinkage: float) -> NCTITerms:
    """Shrinkage LDA by the generalised eigenproblem of (S_b~, S_w~), as the program's.

    ``S_w~ = sum_c p_c shrunk(C_c)`` and ``S_t~ = shrunk(C)`` (biased covariances, each
    shrunk towards its own tr/d), and ``S_b~ = S_t~ - S_w~``: the between-class matrix of
    the shrunk estimates, not the shrunk between-class scatter. The features are projected
    on the top k - 1 generalised eigenvectors (``v^T S_w~ v = 1``, not centred first); the
    posteriors are those of the Gaussian classifier with covariance S_w~.
    """
    n, d = x.shape
    priors = np.bincount(y, minlength=k) / n
    means = class_means(x, y, k)
    within = x - means[y]
    s_w = _shrunk(within.T @ within / n, shrinkage)  # sum_c p_c C_c = within^T within / n
    centred = x - x.mean(axis=0)
    s_t = _shrunk(centred.T @ centred / n, shrinkage)
    evals, evecs = linalg.eigh(s_t - s_w, s_w)
    evecs = evecs[:, np.argsort(evals)[::-1]]
    r = min(k - 1, d)
    coef = linalg.solve(s_w, means.T, assume_a="pos").T
    return _terms(x @ evecs[:, :r], _gaussian_posteriors(x, means, coef, priors), y, k)


def _svd_lda(x: FloatArray, y: IntArray, k: int) -> NCTITerms:
    """LDA by scikit-learn's ``solver="svd"`` (used by the program when its shrinkage hits
    the floor): within-class-standardised, whitened by the SVD of the class-centred data
    scaled by 1/sqrt(n) (as scikit-learn 1.9 does; older releases used 1/(n - k))
    (rank tolerance 1e-4), then the SVD of the weighted class means; features are centred
    on the prior-weighted mean before projection."""
    n, d = x.shape
    counts = np.bincount(y, minlength=k)
    priors = counts / n
    means = class_means(x, y, k)
    xbar = priors @ means
    within = x - means[y]
    std = within.std(axis=0)
    std[std == 0] = 1.0
    _, s, vt = np.linalg.svd(np.sqrt(1.0 / n) * (within / std), full_matrices=False)
    rank = int(np.sum(s > SVD_SOLVER_TOL))
    scalings = (vt[:rank] / std).T / s[:rank]
    fac = 1.0 / (k - 1)
    weighted = (np.sqrt(n * priors * fac) * (means - xbar).T).T @ scalings
    _, s, vt = np.linalg.svd(weighted, full_matrices=False)
    rank = int(np.sum(s > SVD_SOLVER_TOL * s[0]))
    scalings = scalings @ vt.T[:, :rank]
    coef = (means - xbar) @ scalings
    intercept = -0.5 * np.sum(coef**2, axis=1) + np.log(priors)
    logits = (x - xbar) @ scalings @ coef.T + intercept
    r = min(k - 1, d)
    return _terms((x - xbar) @ scalings[:, :r], softmax(logits), y, k)


def _published(x: FloatArray, y: IntArray, k: int) -> NCTITerms:
    """The NCTI authors' ``NCTI_Score`` terms (also mit-ll/IIMM's copy), see :func:`ncti_terms`."""
    n = x.shape[0]
    reduced = pca_project(x, PUBLISHED_PCA_DIM)
    variances = np.sum(reduced**2, axis=0) / (n - 1)  # PCA explained variances, descending
    top = float(np.sum(np.sort(variances)[::-1][:PUBLISHED_SHRINKAGE_TOP]))
    shrinkage = max(float(np.exp(-top)), PUBLISHED_SHRINKAGE_FLOOR)
    if shrinkage == PUBLISHED_SHRINKAGE_FLOOR:
        return _svd_lda(reduced, y, k)
    return _shrinkage_lda(reduced, y, k, shrinkage)


def ncti_terms(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    pca_dim: int | None = 64,
    a: float = 5.0,
    variant: NCTIVariant = "definition",
) -> NCTITerms:
    """The three raw NCTI terms (see :class:`NCTITerms`) of one model on one dataset.

    ``variant="definition"`` (default): the features are optionally reduced by PCA to
    ``pca_dim`` dimensions (default 64, for speed and a well-conditioned scatter; None keeps
    them), then projected into the regularised Fisher space of SFDA (k - 1 dimensions,
    lambda = exp(-a sigma_max(S_w)), ``a`` as in :func:`sfda`); ``ncc`` uses that space's
    nearest-centre Gaussian classifier.

    ``variant="authors"``: the NCTI authors' ``NCTI_Score`` (BUserName/NCTI), which the IIMM
    paper's code copies unchanged, so ``"iimm_reference"`` is the same computation: PCA to
    64 dimensions (``pca_dim`` and ``a`` ignored; fewer when n or d is smaller), shrinkage
    ``s = max(exp(-sum of the top 32 PCA variances), 1e-10)`` (variances with 1/(n - 1));
    then a shrinkage LDA whose eigen solver works on the between-class matrix of the shrunk
    estimates (see :func:`_shrinkage_lda`), or, when s is at its floor, the unshrunk
    LDA of scikit-learn's SVD solver (:func:`_svd_lda`).
    """
    if variant not in ("definition", "iimm_reference", "authors"):
        raise ValueError(
            f"ncti variant must be 'definition', 'iimm_reference' or 'authors', got {variant!r}"
        )
    data = validate(features, labels, method="ncti")
    if variant == "definition":
        return _definition(data.features, data.labels, data.n_classes, pca_dim, a)
    return _published(data.features, data.labels, data.n_classes)


def _min_max(values: FloatArray) -> FloatArray:
    spread = values.max() - values.min()
    if spread <= 0:
        return np.zeros_like(values)
    return (values - values.min()) / spread


def ncti_from_terms(terms: Sequence[NCTITerms]) -> list[float]:
    """NCTI of each candidate from the candidates' raw terms (Wang et al., Eq. 10).

    Each term is min-max normalised across the candidates and
    ``NCTI_m = S_seli,m + S_ncc,m - S_vc,m``, so every score lies in [-1, 2]; a term equal
    for all candidates contributes 0. Needs at least 2 candidates.
    """
    if len(terms) < 2:
        raise ValueError(f"NCTI needs at least 2 candidate models, got {len(terms)}")
    seli = _min_max(np.array([t.seli for t in terms]))
    ncc = _min_max(np.array([t.ncc for t in terms]))
    vc = _min_max(np.array([t.vc for t in terms]))
    return [float(v) for v in seli + ncc - vc]


def ncti_relative(
    candidates: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    pca_dim: int | None = 64,
    a: float = 5.0,
    variant: NCTIVariant = "definition",
) -> list[float]:
    """NCTI as defined in the paper, relative to a set of candidate models.

    ``candidates`` holds one ``(features, labels)`` pair per model (same target dataset).
    The raw terms of each (:func:`ncti_terms` with ``variant``) are combined by
    :func:`ncti_from_terms`. Needs at least 2 candidates.
    """
    if len(candidates) < 2:
        raise ValueError(f"ncti_relative needs at least 2 candidate models, got {len(candidates)}")
    return ncti_from_terms(
        [ncti_terms(f, y, pca_dim=pca_dim, a=a, variant=variant) for f, y in candidates]
    )
