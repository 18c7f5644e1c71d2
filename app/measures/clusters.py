"""Two-cluster measures with the clusters "images" (n points) and "texts" (k points).

As in the paper's appendix A.1.3, the clustering is of all N = n + k L2-normalised points
(the library normalises every row), labelled by modality. Cosine distance is
``1 − u·v``; Euclidean distance is ``‖u − v‖``. The cosine silhouette and the Davies-Bouldin
index need the image sum s = Σ_i x_i first, hence a second O(n·d) pass
(:func:`cluster_pass`); the Euclidean silhouette and the entropy are O(n²·d) and blocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from statistics import NormalDist

import numpy as np
from scipy.special import logsumexp

from app.measures import _native
from app.measures._blocks import default_block_rows, iter_blocks, normalised, rescued_rows

#: Rounding floor: a squared distance or mean cosine distance computed from sums of unit
#: vectors (terms of size ~1 that cancel) carries a few ulps of noise, so values below this
#: are zero distance, not data (scikit-learn, which subtracts coordinates, gets exact zeros).
NOISE = 64 * float(np.finfo(np.float64).eps)


def _silhouette(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-point silhouette (b − a) / max(a, b), 0 where both are 0 (as scikit-learn); a and
    b under the rounding floor :data:`NOISE` count as 0."""
    a = np.where(a < NOISE, 0.0, a)
    b = np.where(b < NOISE, 0.0, b)
    top = np.maximum(a, b)
    out = np.zeros_like(top)
    np.divide(b - a, top, out=out, where=top > 0)
    return out


def cluster_pass(
    images: np.ndarray, T: np.ndarray, s: np.ndarray, block_rows: int | None = None
) -> dict[str, float]:
    """Second streaming pass: cosine silhouette and Davies-Bouldin, given s = Σ_i x_i.

    For an image x_i (n images, k unit texts, τ = Σ_c t_c):
    a_i = 1 − (x_i·s − ‖x_i‖²)/(n−1) (mean cosine distance to the other images),
    b_i = 1 − x_i·τ/k (mean cosine distance to the texts), likewise for each text t_c with
    the roles swapped; silhouette_cosine = mean over all n+k points of (b−a)/max(a,b).
    Davies-Bouldin for two clusters: (σ_I + σ_T)/‖μ_I − μ_T‖ with σ the mean Euclidean
    distance of a cluster's points to its centroid μ (0 when both σ or the centroid
    distance are ~0, as scikit-learn). ``T`` must already have unit rows.
    """
    n, k = images.shape[0], T.shape[0]
    tau = T.sum(axis=0)
    mu_i, mu_t = s / n, tau / k
    sil_sum, dist_sum = 0.0, 0.0
    for dot_s, dot_t, qq in _projections(images, s, tau, block_rows):
        a = 1.0 - (dot_s - qq) / (n - 1)
        sil_sum += float(_silhouette(a, 1.0 - dot_t / k).sum())
        d2 = qq - 2.0 * dot_s / n + float(mu_i @ mu_i)
        dist_sum += float(np.sqrt(np.where(d2 < NOISE, 0.0, d2)).sum())
    qt = np.einsum("ij,ij->i", T, T)
    a_t = 1.0 - (T @ tau - qt) / (k - 1)
    sil_sum += float(_silhouette(a_t, 1.0 - (T @ s) / n).sum())
    sigma_t = float(np.linalg.norm(T - mu_t, axis=1).mean())
    gap = float(np.linalg.norm(mu_i - mu_t))
    return {
        "silhouette_cosine": sil_sum / (n + k),
        "davies_bouldin": _davies_bouldin(dist_sum / n, sigma_t, gap),
    }


def _projections(
    images: np.ndarray, s: np.ndarray, tau: np.ndarray, block_rows: int | None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per block: x_i·s, x_i·τ and ‖x_i‖² of the unit rows x_i (C kernel or NumPy)."""
    if not _native.supports(images):
        for blk in iter_blocks(images, block_rows):
            # einsum, not BLAS gemv: single-threaded SIMD loops do not stall on a busy machine.
            dot_s = np.einsum("ij,j->i", blk.raw, s) * blk.inv_norms
            dot_t = np.einsum("ij,j->i", blk.raw, tau) * blk.inv_norms
            yield dot_s, dot_t, blk.sq_norms * blk.inv_norms * blk.inv_norms
        return
    vecs = np.stack([s, tau])
    rows = block_rows or _native.KERNEL_BLOCK_ROWS
    for start in range(0, images.shape[0], rows):
        block = images[start : start + rows]
        dots, sq, bad = _native.project(block, vecs)
        if bad.size:  # zero or non-finite norms: the NumPy path raises or rescues them
            fixed = rescued_rows(block, bad, offset=start)
            dots[bad] = fixed.raw @ vecs.T
            sq[bad] = fixed.sq_norms
        inv = 1.0 / np.sqrt(sq)
        yield dots[:, 0] * inv, dots[:, 1] * inv, sq * inv * inv


def _davies_bouldin(sigma_i: float, sigma_t: float, gap: float) -> float:
    """(σ_I + σ_T)/gap, with scikit-learn's convention of 0 for degenerate clusterings."""
    if np.allclose([sigma_i, sigma_t], 0.0) or np.isclose(gap, 0.0):
        return 0.0
    return (sigma_i + sigma_t) / gap


# --------------------------------------------------------------------------- Euclidean


def _euclidean_sums(
    Q: np.ndarray, images: np.ndarray, T: np.ndarray, block_rows: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """For unit query rows Q: Σ_j ‖q − x_j‖ over all images and Σ_c ‖q − t_c‖ (blocked)."""
    qq = np.einsum("ij,ij->i", Q, Q)
    to_img = np.zeros(Q.shape[0])
    for blk in iter_blocks(images, block_rows):
        xx = blk.sq_norms * blk.inv_norms * blk.inv_norms
        g = (Q @ blk.raw.T) * blk.inv_norms
        to_img += _dist_from_gram(qq, xx, g).sum(axis=1)
    to_txt = _dist_from_gram(qq, np.einsum("ij,ij->i", T, T), Q @ T.T).sum(axis=1)
    return to_img, to_txt


def _dist_from_gram(qq: np.ndarray, xx: np.ndarray, g: np.ndarray) -> np.ndarray:
    """‖q − x‖ = sqrt(‖q‖² + ‖x‖² − 2 q·x), 0 under the rounding floor, in place on ``g``."""
    g *= -2.0
    g += qq[:, None]
    g += xx[None, :]
    g[g < NOISE] = 0.0
    return np.sqrt(g, out=g)


def _euclid_values(
    Q: np.ndarray, is_image: bool, images: np.ndarray, T: np.ndarray, block_rows: int | None
) -> np.ndarray:
    """Euclidean silhouette values of the query points Q (images or texts, unit rows)."""
    n, k = images.shape[0], T.shape[0]
    to_img, to_txt = _euclidean_sums(Q, images, T, block_rows)
    if is_image:
        return _silhouette(to_img / (n - 1), to_txt / k)
    return _silhouette(to_txt / (k - 1), to_img / n)


def _query_rows(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Unit float64 rows ``images[idx]`` (a small gathered copy)."""
    return normalised(images[np.sort(idx)], "images")


def _sampled_silhouette(
    images: np.ndarray, T: np.ndarray, sample: int, seed: int, block_rows: int | None
) -> tuple[float, float]:
    """Stratified estimate of the Euclidean silhouette and its standard error."""
    n, k = images.shape[0], T.shape[0]
    rng = np.random.default_rng(seed)
    m_i, m_t = min(sample, n), min(sample, k)
    step = max(1, (block_rows or default_block_rows(images.shape[1])) // 4)
    idx = rng.choice(n, size=m_i, replace=False)
    v_img = np.concatenate(
        [
            _euclid_values(_query_rows(images, idx[j : j + step]), True, images, T, block_rows)
            for j in range(0, m_i, step)
        ]
    )
    tdx = np.sort(rng.choice(k, size=m_t, replace=False))
    v_txt = _euclid_values(T[tdx], False, images, T, block_rows)
    w_i, w_t = n / (n + k), k / (n + k)
    est = w_i * v_img.mean() + w_t * v_txt.mean()
    var = w_i**2 * _mean_var(v_img, n) + w_t**2 * _mean_var(v_txt, k)
    return float(est), float(np.sqrt(var))


def _mean_var(v: np.ndarray, population: int) -> float:
    """Variance of the mean of a simple random sample without replacement."""
    m = v.shape[0]
    if m >= population or m < 2:
        return 0.0
    return float(v.var(ddof=1) / m * (1.0 - m / population))


def silhouette_euclidean(
    images: np.ndarray,
    texts: np.ndarray,
    *,
    sample: int | None = None,
    seed: int = 0,
    block_rows: int | None = None,
) -> float:
    """Silhouette score with Euclidean distance of the images/texts clustering.

    mean over all n+k unit points of (b−a)/max(a,b), a = mean ‖z − z'‖ to the other members
    of its modality, b = mean ‖z − z'‖ to the other modality (scikit-learn's
    ``silhouette_score(Z, modality, metric="euclidean")``). Exact when ``sample`` is None:
    O((n+k)²·d) time, never more than a block x block distance matrix in memory. With
    ``sample=m``: the stratified estimate of :func:`silhouette_euclidean_ci` (m images and
    min(m, k) texts drawn without replacement, each scored against all n+k points).
    """
    from app.measures._validate import check_pair

    X, T0 = check_pair(images, texts)
    T = normalised(T0, "texts")
    if sample is not None and sample < max(X.shape[0], T.shape[0]):
        return _sampled_silhouette(X, T, int(sample), seed, block_rows)[0]
    total = 0.0
    for blk in iter_blocks(X, block_rows):
        Q = blk.raw * blk.inv_norms[:, None]
        total += float(_euclid_values(Q, True, X, T, block_rows).sum())
    step = block_rows or default_block_rows(T.shape[1])
    for start in range(0, T.shape[0], step):
        total += float(_euclid_values(T[start : start + step], False, X, T, block_rows).sum())
    return total / (X.shape[0] + T.shape[0])


def silhouette_euclidean_ci(
    images: np.ndarray,
    texts: np.ndarray,
    *,
    sample: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    block_rows: int | None = None,
) -> tuple[float, float, float]:
    """Sampled Euclidean silhouette with a normal-approximation confidence interval.

    Stratified by modality: estimate = (n·mean_I + k·mean_T)/(n+k) of the exact per-point
    silhouettes of m_I = min(sample, n) images and m_T = min(sample, k) texts drawn without
    replacement; variance = Σ_strata w² (1 − m/N_s) s²/m (finite-population corrected),
    interval = estimate ± z·sqrt(variance). O((m_I + m_T)·(n + k)·d) time. Returns
    (estimate, low, high); the interval is degenerate when every point is scored.
    """
    from app.measures._validate import check_pair

    if sample < 2:
        raise ValueError(f"sample must be at least 2; got {sample}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    X, T0 = check_pair(images, texts)
    est, se = _sampled_silhouette(X, normalised(T0, "texts"), int(sample), seed, block_rows)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return est, est - z * se, est + z * se


# --------------------------------------------------------------------------- entropy


def _kde_entropy(Z: np.ndarray, block_rows: int = 512) -> float:
    """Leave-one-out resubstitution entropy of an isotropic Gaussian KDE of the rows of Z.

    h = σ̄ m^(−1/(d+4)) (Scott's rule, σ̄² = mean per-dimension variance);
    Ĥ = −(1/m) Σ_i log p̂_{−i}(z_i), p̂_{−i}(z) = (1/(m−1)) Σ_{j≠i} N(z; z_j, h² I).
    """
    m, d = Z.shape
    sigma = float(np.sqrt(Z.var(axis=0, ddof=1).mean()))
    if sigma == 0.0:
        return float("-inf")
    h2 = (sigma * m ** (-1.0 / (d + 4))) ** 2
    zz = np.einsum("ij,ij->i", Z, Z)
    total = 0.0
    for start in range(0, m, block_rows):
        stop = min(start + block_rows, m)
        g = Z[start:stop] @ Z.T
        d2 = np.maximum(zz[start:stop, None] + zz[None, :] - 2.0 * g, 0.0)
        logk = -d2 / (2.0 * h2)
        logk[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        total += float(logsumexp(logk, axis=1).sum())
    log_norm = np.log(m - 1) + 0.5 * d * np.log(2.0 * np.pi * h2)
    return -(total / m - log_norm)


def clustering_entropy(
    images: np.ndarray, texts: np.ndarray, *, sample: int | None = 2000, seed: int = 0
) -> float:
    """Total clustering entropy of the images/texts clustering (appendix A.1.3; optional).

    H = (n·H_I + k·H_T)/(n + k), the size-weighted mean of each modality's differential
    entropy, each estimated from a Gaussian kernel density estimate of its unit rows (see
    :func:`_kde_entropy`: isotropic kernel with Scott's bandwidth, leave-one-out
    resubstitution, because a full-covariance KDE is singular when a cluster has fewer points
    than dimensions). O(m²·d) per cluster, on at most ``sample`` rows drawn without
    replacement (all rows when ``sample`` is None). The paper found this measure costly and
    not predictive; it is offered for completeness. −inf when a cluster has no spread.
    """
    from app.measures._validate import check_pair

    X, T0 = check_pair(images, texts)
    T = normalised(T0, "texts")
    rng = np.random.default_rng(seed)
    n, k = X.shape[0], T.shape[0]
    idx = np.arange(n) if sample is None or sample >= n else rng.choice(n, sample, replace=False)
    tdx = np.arange(k) if sample is None or sample >= k else rng.choice(k, sample, replace=False)
    h_img = _kde_entropy(_query_rows(X, idx))
    h_txt = _kde_entropy(T[np.sort(tdx)])
    return (n * h_img + k * h_txt) / (n + k)
