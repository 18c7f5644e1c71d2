"""H-score (Bao et al., ICIP 2019) and its shrinkage variant (Ibrahim et al., 2022)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from ._common import FloatArray, class_means, validate

HScoreVariant = Literal["definition", "iimm_reference", "authors"]
#: numpy ``pinv``'s cutoff in the published programs (relative to the largest eigenvalue).
PUBLISHED_RCOND = 1e-15


def ledoit_wolf_shrinkage(centred: FloatArray) -> float:
    """Ledoit & Wolf (2004) optimal shrinkage of the sample covariance towards mu * I.

    With S = X^T X / n, mu = tr(S)/d: ``delta^2 = ||S - mu I||_F^2 / d``,
    ``b^2 = min(delta^2, sum_i ||x_i x_i^T - S||_F^2 / (n^2 d))``; shrinkage = b^2 / delta^2.
    """
    n, d = centred.shape
    s = centred.T @ centred / n
    mu = np.trace(s) / d
    delta2 = (np.sum(s**2) - 2.0 * mu * np.trace(s) + d * mu**2) / d
    row_norms4 = np.sum(np.sum(centred**2, axis=1) ** 2)
    b2 = (row_norms4 / n - np.sum(s**2)) / (n * d)
    b2 = min(max(b2, 0.0), delta2)
    return 0.0 if delta2 <= 0 else float(b2 / delta2)


def hscore(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    shrinkage: bool = False,
    rcond: float = 1e-10,
    variant: HScoreVariant = "definition",
) -> float:
    """H-score of Bao et al., "An Information-Theoretic Approach to Transferability in Task
    Transfer Learning", ICIP 2019: ``H(f) = tr(cov(f)^+ cov(E[f | Y]))``.

    cov(f) is the (biased) feature covariance and cov(E[f|Y]) the covariance of each sample's
    class-mean vector, ``sum_c (n_c/n)(mu_c - mu)(mu_c - mu)^T``. The inverse is a
    pseudo-inverse that drops eigenvalues below ``rcond`` times the largest, so collinear or
    low-rank features are handled. ``shrinkage=True`` gives the regularised H-score of
    Ibrahim et al., "Newer is not always better: Rethinking transferability metrics, their
    peculiarities, stability and performance", ECML-PKDD 2022:
    ``tr(((1 - a) cov(f) + a (tr cov(f) / d) I)^-1 (1 - a) cov(E[f|Y]))`` with a the
    Ledoit-Wolf shrinkage, which is better behaved when n is small relative to d.
    Higher is more transferable (at most k - 1 without shrinkage). Labels may be arbitrary.

    ``variant="definition"`` (default) is the above. ``variant="iimm_reference"`` is the IIMM
    paper's code (mit-ll/IIMM ``H_Score``, from Bao et al.'s released code): covariances with
    the ``n - 1`` denominator (which cancels in the ratio) and ``pinv`` with ``rcond=1e-15``
    instead of ``rcond``; it has no shrinkage form. ``variant="authors"``: without shrinkage,
    Bao et al.'s released code, the same computation as ``"iimm_reference"``; with
    ``shrinkage=True``, the regularised H-score as published in thuml's Transfer-Learning-
    Library (``regularized_h_score``): the Ledoit-Wolf covariance of the centred features
    (``1/n``) but ``cov(E[f|Y])`` with ``1/(n - 1)``, which scales the score by n / (n - 1).
    """
    if variant not in ("definition", "iimm_reference", "authors"):
        raise ValueError(
            f"hscore variant must be 'definition', 'iimm_reference' or 'authors', got {variant!r}"
        )
    if variant == "iimm_reference" and shrinkage:
        raise ValueError(
            "the IIMM paper's code has no shrinkage H-score; use variant='definition' or "
            "variant='authors' with shrinkage=True"
        )
    if variant != "definition":
        rcond = PUBLISHED_RCOND
    data = validate(features, labels, method="hscore")
    x = data.features - data.features.mean(axis=0)
    n, d = x.shape
    cov_f = x.T @ x / n
    means = class_means(x, data.labels, data.n_classes)
    priors = data.counts / n
    cov_g = (means * priors[:, None]).T @ means
    if shrinkage:
        a = ledoit_wolf_shrinkage(x)
        cov_f = (1.0 - a) * cov_f + a * (np.trace(cov_f) / d) * np.eye(d)
        cov_g = (1.0 - a) * cov_g
        if variant == "authors":
            cov_g = cov_g * n / (n - 1)
    eigvals, eigvecs = np.linalg.eigh(cov_f)
    keep = eigvals > rcond * max(float(eigvals.max()), 1e-300)
    whitened = eigvecs[:, keep].T @ cov_g @ eigvecs[:, keep]
    return float(np.sum(np.diag(whitened) / eigvals[keep]))
