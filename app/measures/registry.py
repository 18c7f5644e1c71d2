"""Names of the measures and one entry point that computes any set of them efficiently."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from app.measures._blocks import normalised
from app.measures._validate import as_labels, check_pair
from app.measures.clusters import cluster_pass, clustering_entropy, silhouette_euclidean
from app.measures.stats import accumulate, additive_measures

#: A baseline's variant by name (see `VARIANTS`): the method's paper, the IIMM paper's code,
#: the authors' code (LogME also the authors' ICML program).
Variant = Literal["definition", "iimm_reference", "authors", "authors_icml"]

#: The exact O(n·d) family (one streaming pass, plus one for the cosine silhouette and DB).
FAST_MEASURES: tuple[str, ...] = (
    "iimm",
    "inter_modal",
    "intra_images",
    "intra_texts",
    "correct_alignment",
    "modality_gap",
    "silhouette_cosine",
    "davies_bouldin",
    "calinski_harabasz",
)
#: Costly measures of this package (O(n²·d), sampled for large n).
_COSTLY = ("silhouette_euclidean", "entropy")
#: Transferability baselines, resolved in ``app.measures.transferability``. NCTI is relative to
#: a set of candidate models, so the per-model measures are its three raw terms.
NCTI_TERMS: tuple[str, ...] = ("ncti_seli", "ncti_ncc", "ncti_vc")
BASELINES: tuple[str, ...] = ("transrate", "sfda", *NCTI_TERMS, "emms", "logme", "hscore", "gbc")
ALL_MEASURES: tuple[str, ...] = FAST_MEASURES + _COSTLY + BASELINES
#: The variant of every baseline that :func:`compute_measures` computes (and the service
#: stores): each method's paper, computed exactly (see ``app.measures.transferability``).
BASELINE_VARIANT = "definition"
VARIANTS: tuple[str, ...] = ("definition", "iimm_reference", "authors", "authors_icml")
#: The variants each baseline has (NCTI's terms are one method, ``ncti``). A variant a method
#: does not have makes that measure undefined (null with the reason), not the request invalid.
METHOD_VARIANTS: dict[str, tuple[str, ...]] = {
    **{m: ("definition", "iimm_reference", "authors") for m in (*BASELINES, "ncti")},
    "logme": ("definition", "authors", "authors_icml"),
}
_NO_VARIANT_WHY: dict[tuple[str, str], str] = {
    ("logme", "iimm_reference"): "the IIMM paper's code has no LogME",
}
#: Names no longer offered, with what to use instead.
RETIRED: dict[str, str] = {
    "ncti": (
        "'ncti' is no longer a per-model measure: NCTI (Wang et al., 2023) min-max normalises "
        "its terms across a set of candidate models, and a single-model normalisation does not "
        "rank models as NCTI does. Request its raw terms 'ncti_seli', 'ncti_ncc' and 'ncti_vc' "
        "for every candidate model; GET /v1/comparisons combines them into NCTI across the "
        "project's base models"
    ),
}

#: compute_measures scores the Euclidean silhouette exactly up to this many points (n + k),
#: and by the stratified sampled estimate of this many images above it.
EXACT_EUCLIDEAN_MAX_POINTS = 20_000
EUCLIDEAN_SAMPLE = 5_000

_SECOND_PASS = frozenset({"silhouette_cosine", "davies_bouldin"})


def _resolve_names(names: Iterable[str] | None) -> list[str]:
    """Requested names, deduplicated in order; ValueError listing valid names otherwise."""
    if names is None:
        return list(FAST_MEASURES)
    wanted = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    check_names(wanted)
    if not wanted:
        raise ValueError(f"no measure requested; valid names: {', '.join(ALL_MEASURES)}")
    return wanted


def check_names(names: Iterable[str]) -> None:
    """ValueError naming what to use instead for a retired name, or the valid names."""
    names = list(names)
    for name in names:
        if name in RETIRED:
            raise ValueError(RETIRED[name])
    unknown = [n for n in names if n not in ALL_MEASURES]
    if unknown:
        raise ValueError(
            f"unknown measure(s) {', '.join(map(repr, unknown))}; "
            f"valid names: {', '.join(ALL_MEASURES)}"
        )


def _fast(
    X: np.ndarray, Tn: np.ndarray, y: np.ndarray, wanted: list[str], block_rows: int | None
) -> dict[str, float]:
    """The O(n·d) family: one accumulating pass, a second one only if it is needed."""
    st = accumulate(X, y, Tn.shape[0], block_rows)
    out = additive_measures(st, Tn)
    if _SECOND_PASS.intersection(wanted):
        out.update(cluster_pass(X, Tn, st.image_sum, block_rows))
    return out


def _baseline(name: str, X: np.ndarray, T: np.ndarray, y: object, variant: str) -> float:
    """A transferability score from ``app.measures.transferability`` (imported lazily)."""
    module = importlib.import_module("app.measures.transferability")
    fn = getattr(module, name)
    if name == "emms":
        return float(fn(X, np.asarray(y), T, variant=variant))
    return float(fn(X, np.asarray(y), variant=variant))


def _ncti_terms(X: np.ndarray, y: object, variant: str) -> dict[str, float]:
    """The three raw NCTI terms, from one fit."""
    module = importlib.import_module("app.measures.transferability")
    terms = module.ncti_terms(X, np.asarray(y), variant=variant)
    return {"ncti_seli": terms.seli, "ncti_ncc": terms.ncc, "ncti_vc": terms.vc}


def compute_measures(
    images: object,
    texts: object,
    labels: object,
    names: Iterable[str] | None = None,
    *,
    block_rows: int | None = None,
    variant: str = BASELINE_VARIANT,
) -> dict[str, float]:
    """Compute the named measures (default :data:`FAST_MEASURES`) and return name -> value.

    Inputs are validated once. The additive family comes from ONE streaming pass over the
    images (:class:`~app.measures.stats.ModalityStats`), plus one more pass when
    ``silhouette_cosine`` or ``davies_bouldin`` is requested. ``silhouette_euclidean`` is
    exact up to :data:`EXACT_EUCLIDEAN_MAX_POINTS` points and sampled above; ``entropy`` is
    :func:`~app.measures.clusters.clustering_entropy` with its defaults. Baselines
    (``transrate``, ``sfda``, ``emms``, ``logme``, ``hscore``, ``gbc`` and NCTI's raw terms
    ``ncti_seli``, ``ncti_ncc``, ``ncti_vc``) receive the caller's image array and labels
    (``emms`` also the texts) as given, and are computed with ``variant`` (default
    :data:`BASELINE_VARIANT`, ``"definition"``; ``"iimm_reference"`` and ``"authors"``
    reproduce the published programs, see ``app.measures.transferability``). A retired name
    (:data:`RETIRED`) raises ValueError saying what to use instead.

    Raises ValueError when any requested measure is undefined on these data; use
    :func:`measure_report` to get the defined ones with a reason for each undefined one.
    """
    wanted = _resolve_names(names)
    report = _compute(images, texts, labels, wanted, block_rows, variant, strict=True)
    return {name: float(report.values[name]) for name in wanted}  # type: ignore[arg-type]


@dataclass
class MeasureReport:
    """Every requested measure: a finite value, or None with the reason it is undefined."""

    values: dict[str, float | None]
    reasons: dict[str, str] = field(default_factory=dict)


#: Errors by which a measure says it is undefined on its input (one class present, one sample
#: per class, a singular covariance), as opposed to an invalid input.
UNDEFINED_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    ArithmeticError,
    np.linalg.LinAlgError,
)


def measure_report(
    images: object,
    texts: object,
    labels: object,
    names: Iterable[str] | None = None,
    *,
    block_rows: int | None = None,
    variant: str = BASELINE_VARIANT,
) -> MeasureReport:
    """Like :func:`compute_measures`, but one undefined measure never fails the others.

    A measure that raises one of :data:`UNDEFINED_ERRORS` on valid inputs (GBC with one
    sample per class, a baseline with one class present) or whose value is not finite is
    None in ``values``, with its reason in ``reasons``. Invalid inputs (shapes, labels out of
    range, unknown or retired names, an unknown variant) still raise ValueError: then no
    measure is defined.
    """
    wanted = _resolve_names(names)
    return _compute(images, texts, labels, wanted, block_rows, variant, strict=False)


def _method(name: str) -> str:
    """The method a measure belongs to (NCTI's three terms are ``ncti``)."""
    return "ncti" if name in NCTI_TERMS else name


def missing_variant(name: str, variant: str) -> str | None:
    """Why baseline ``name`` has no ``variant`` (None when it has it, or is not a baseline)."""
    method = _method(name)
    have = METHOD_VARIANTS.get(method)
    if have is None or variant in have:
        return None
    owners = ", ".join(m for m, v in METHOD_VARIANTS.items() if variant in v)
    why = _NO_VARIANT_WHY.get((method, variant), f"only {owners} has one")
    return f"{method} has no {variant} variant: {why}; use {', '.join(have[:-1])} or {have[-1]}"


def _reason(label: str, variant: str, exc: Exception) -> str:
    """``undefined on these data: <measure> ...``, naming the measure whatever raised."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, np.linalg.LinAlgError):
        text = f"linear algebra failed ({text})"
    if label and not text.startswith(label):
        where = "" if label not in METHOD_VARIANTS else f" ({variant} variant)"
        text = f"{label}{where}: {text}"
    return f"undefined on these data: {text}"


def _compute(
    images: object,
    texts: object,
    labels: object,
    wanted: list[str],
    block_rows: int | None,
    variant: str,
    *,
    strict: bool,
) -> MeasureReport:
    """Each group of measures computed together (the fast family, NCTI's terms, each other
    measure alone); with ``strict=False`` a group that is undefined is None with a reason."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    X, T = check_pair(images, texts)
    y = as_labels(labels, X.shape[0], T.shape[0])
    Tn = normalised(T, "texts")
    report = MeasureReport({})

    def run(names: list[str], fn: Callable[[], dict[str, float]]) -> None:
        label = _method(names[0]) if names[0] in METHOD_VARIANTS or len(names) == 1 else ""
        missing = missing_variant(names[0], variant)
        if missing is not None:
            if strict:
                raise ValueError(missing)
            for name in names:
                report.values[name] = None
                report.reasons[name] = f"undefined: {missing}"
            return
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                got = fn()
        except UNDEFINED_ERRORS as exc:
            if strict:
                raise
            for name in names:
                report.values[name] = None
                report.reasons[name] = _reason(label, variant, exc)
            return
        for name in names:
            value = float(got[name])
            if strict or math.isfinite(value):
                report.values[name] = value
            else:
                report.values[name] = None
                report.reasons[name] = f"undefined on these data: the value is {value}"

    fast = [n for n in wanted if n in FAST_MEASURES]
    if fast:
        run(fast, lambda: _fast(X, Tn, y, wanted, block_rows))
    ncti = [n for n in wanted if n in NCTI_TERMS]
    if ncti:
        run(ncti, lambda: _ncti_terms(X, y, variant))
    for name in wanted:
        if name not in FAST_MEASURES and name not in NCTI_TERMS:
            run([name], lambda name=name: {name: _single(name, X, T, y, block_rows, variant)})
    return MeasureReport({n: report.values[n] for n in wanted}, report.reasons)


def _single(
    name: str, X: np.ndarray, T: np.ndarray, y: np.ndarray, block_rows: int | None, variant: str
) -> float:
    """One costly measure or baseline."""
    if name == "silhouette_euclidean":
        big = X.shape[0] + T.shape[0] > EXACT_EUCLIDEAN_MAX_POINTS
        sample = EUCLIDEAN_SAMPLE if big else None
        return silhouette_euclidean(X, T, sample=sample, block_rows=block_rows)
    if name == "entropy":
        return clustering_entropy(X, T)
    return _baseline(name, X, T, y, variant)
