"""Pure numerical measures of a vision-language model's embeddings of a task (numpy/scipy only).

Every function L2-normalises the rows of its inputs itself, accumulates in float64 over row
blocks (float16/32/64 arrays and memory-mapped ``.npy`` files alike) and never modifies the
caller's arrays. The formulas are in each docstring and in DESIGN.md §2. The two O(n·d)
passes run through an optional C kernel when it is built (:func:`kernel_info`), else NumPy.
"""

from app.measures._native import kernel_info
from app.measures.clusters import (
    clustering_entropy,
    silhouette_euclidean,
    silhouette_euclidean_ci,
)
from app.measures.iimm import (
    calinski_harabasz,
    correct_alignment,
    davies_bouldin,
    iimm,
    inter_modal,
    intra_images,
    intra_texts,
    modality_gap,
    silhouette_cosine,
)
from app.measures.registry import (
    ALL_MEASURES,
    BASELINE_VARIANT,
    FAST_MEASURES,
    RETIRED,
    MeasureReport,
    check_names,
    compute_measures,
    measure_report,
)
from app.measures.stats import ModalityStats
from app.measures.uncertainty import SampleSize, bootstrap_ci, stable_sample_size

__all__ = [
    "ALL_MEASURES",
    "BASELINE_VARIANT",
    "FAST_MEASURES",
    "RETIRED",
    "MeasureReport",
    "ModalityStats",
    "SampleSize",
    "bootstrap_ci",
    "calinski_harabasz",
    "check_names",
    "clustering_entropy",
    "compute_measures",
    "correct_alignment",
    "davies_bouldin",
    "iimm",
    "inter_modal",
    "intra_images",
    "intra_texts",
    "kernel_info",
    "measure_report",
    "modality_gap",
    "silhouette_cosine",
    "silhouette_euclidean",
    "silhouette_euclidean_ci",
    "stable_sample_size",
]
