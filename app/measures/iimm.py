"""The Inter-Intra Modal Measure and its terms, exact in O(n·d) time and O(k·d) memory.

Inputs everywhere: image embeddings ``images`` (n x d), class text embeddings ``texts``
(k x d), integer ``labels`` (n, values 0..k-1); float16/32/64 arrays or memory-mapped
``.npy`` files. The library L2-normalises every row itself (so x_i and t_c below are unit
vectors), accumulates in float64 over row blocks, and never modifies the caller's arrays.
"""

from __future__ import annotations

import numpy as np

from app.measures._blocks import normalised
from app.measures._validate import as_labels, check_images, check_pair
from app.measures.clusters import cluster_pass
from app.measures.stats import ModalityStats, accumulate, additive_measures


def stats_pass(
    images: object, texts: object, labels: object | None, block_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray, ModalityStats]:
    """Validate, then one pass: (images as given, unit float64 texts, filled accumulator).

    Without labels every image is counted in class 0, which serves the measures that do not
    depend on labels (gap, cluster measures).
    """
    X, T0 = check_pair(images, texts)
    T = normalised(T0, "texts")
    k = T.shape[0]
    if labels is None:
        y = np.broadcast_to(np.zeros(1, dtype=np.intp), (X.shape[0],))
    else:
        y = as_labels(labels, X.shape[0], k)
    return X, T, accumulate(X, y, k, block_rows)


def inter_modal(images: object, texts: object, labels: object) -> float:
    """Incorrect label alignment A_inc = (1/n) Σ_i (1/(k−1)) Σ_{c≠y_i} x_i·t_c.

    Computed as (s·τ − Σ_c S_c·t_c)/(n(k−1)) with s = Σ_i x_i, τ = Σ_c t_c and the class
    sums S_c = Σ_{y_i=c} x_i: exact, one pass, no k x n matrix.
    """
    _, T, st = stats_pass(images, texts, labels)
    return additive_measures(st, T)["inter_modal"]


def correct_alignment(images: object, texts: object, labels: object) -> float:
    """Correct label alignment A_cor = (1/n) Σ_i x_i·t_{y_i} = Σ_c S_c·t_c / n."""
    _, T, st = stats_pass(images, texts, labels)
    return additive_measures(st, T)["correct_alignment"]


def iimm(images: object, texts: object, labels: object) -> float:
    """Inter-Intra Modal Measure IIMM = (A_inc + S_img)/2 (see inter_modal, intra_images)."""
    _, T, st = stats_pass(images, texts, labels)
    return additive_measures(st, T)["iimm"]


def intra_images(images: object) -> float:
    """Intra-images similarity S_img = 2/(n(n−1)) Σ_{i<j} x_i·x_j = (‖s‖² − Σ‖x_i‖²)/(n(n−1))."""
    X = check_images(images)
    n = X.shape[0]
    st = accumulate(X, np.broadcast_to(np.zeros(1, dtype=np.intp), (n,)), 1)
    s = st.image_sum
    return (float(s @ s) - st.sq_norms) / (n * (n - 1))


def intra_texts(texts: object) -> float:
    """Intra-texts similarity S_txt = 2/(k(k−1)) Σ_{c<c'} t_c·t_c' (as S_img, over texts)."""
    T = normalised(check_images(texts, "texts"), "texts")
    k = T.shape[0]
    tau = T.sum(axis=0)
    return (float(tau @ tau) - float(np.einsum("ij,ij->", T, T))) / (k * (k - 1))


def modality_gap(images: object, texts: object) -> float:
    """Modality gap (Liang et al. 2022): ‖(1/n) Σ_i x_i − (1/k) Σ_c t_c‖₂."""
    _, T, st = stats_pass(images, texts, None)
    return additive_measures(st, T)["modality_gap"]


def calinski_harabasz(images: object, texts: object) -> float:
    """Calinski-Harabasz index of the images/texts clustering of all n+k unit points.

    CH = [B/(2−1)] / [W/(N−2)], N = n+k, B = n‖μ_I − μ‖² + k‖μ_T − μ‖² (μ the mean of all
    points), W = Σ_i ‖x_i − μ_I‖² + Σ_c ‖t_c − μ_T‖², all from sums (one pass); equals
    scikit-learn's ``calinski_harabasz_score`` on the stacked points.
    """
    _, T, st = stats_pass(images, texts, None)
    return additive_measures(st, T)["calinski_harabasz"]


def silhouette_cosine(images: object, texts: object) -> float:
    """Cosine silhouette of the images/texts clustering, exact in two O(n·d) passes.

    Mean over all n+k unit points of (b−a)/max(a,b) with cosine distance 1 − u·v; for an
    image a_i = 1 − (x_i·s − ‖x_i‖²)/(n−1), b_i = 1 − x_i·τ/k (and symmetrically for
    texts). Equals scikit-learn's ``silhouette_score(Z, modality, metric="cosine")``.
    """
    X, T, st = stats_pass(images, texts, None)
    return cluster_pass(X, T, st.image_sum)["silhouette_cosine"]


def davies_bouldin(images: object, texts: object) -> float:
    """Davies-Bouldin index of the images/texts clustering: (σ_I + σ_T)/‖μ_I − μ_T‖.

    σ is the mean Euclidean distance of a modality's unit points to their centroid μ (second
    pass); equals scikit-learn's ``davies_bouldin_score`` on the stacked points.
    """
    X, T, st = stats_pass(images, texts, None)
    return cluster_pass(X, T, st.image_sum)["davies_bouldin"]
