"""Measure names, dispatch, and the package's import boundary."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

import app.measures as am
from app.measures import registry


def test_name_lists() -> None:
    assert am.FAST_MEASURES == (
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
    extra = ("silhouette_euclidean", "entropy", "transrate", "sfda", "emms", *registry.NCTI_TERMS)
    assert set(am.ALL_MEASURES) == set(am.FAST_MEASURES) | {*extra, "logme", "hscore", "gbc"}


def test_requested_names_come_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    X, T, y = rng.standard_normal((30, 4)), rng.standard_normal((3, 4)), rng.integers(0, 3, 30)
    out = am.compute_measures(X, T, y, ["modality_gap", "iimm", "silhouette_euclidean"])
    assert list(out) == ["modality_gap", "iimm", "silhouette_euclidean"]
    assert out["silhouette_euclidean"] == pytest.approx(am.silhouette_euclidean(X, T))


def test_one_pass_unless_a_second_pass_measure_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = registry.cluster_pass
    monkeypatch.setattr(
        registry, "cluster_pass", lambda *a, **k: calls.append("2") or real(*a, **k)
    )
    rng = np.random.default_rng(1)
    X, T, y = rng.standard_normal((30, 4)), rng.standard_normal((3, 4)), rng.integers(0, 3, 30)
    am.compute_measures(X, T, y, ["iimm", "calinski_harabasz", "modality_gap"])
    assert calls == []
    am.compute_measures(X, T, y)
    assert calls == ["2"]


def test_baselines_resolve_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("app.measures.transferability")
    fake.logme = lambda features, labels, variant: float(len(features)) + (variant == "definition")  # type: ignore[attr-defined]
    fake.emms = lambda f, labels, emb, variant: float(emb.shape[0])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "app.measures.transferability", fake)
    rng = np.random.default_rng(2)
    X, T, y = rng.standard_normal((12, 4)), rng.standard_normal((3, 4)), rng.integers(0, 3, 12)
    assert am.compute_measures(X, T, y, ["logme", "emms"]) == {"logme": 13.0, "emms": 3.0}


def test_importing_the_package_loads_no_heavy_framework() -> None:
    heavy = ("torch", "sqlalchemy", "fastapi", "celery")
    code = f"import sys, app.measures; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_retired_ncti_name_says_what_to_use_instead() -> None:
    rng = np.random.default_rng(1)
    X, T, y = rng.standard_normal((30, 4)), rng.standard_normal((3, 4)), np.arange(30) % 3
    with pytest.raises(ValueError, match="'ncti_seli', 'ncti_ncc' and 'ncti_vc'"):
        am.compute_measures(X, T, y, ["iimm", "ncti"])
    assert "ncti" not in am.ALL_MEASURES


def test_baselines_are_the_definition_variant_and_ncti_terms_come_from_one_fit() -> None:
    from app.measures import transferability as tr

    rng = np.random.default_rng(2)
    y = np.arange(60) % 3
    X = rng.standard_normal((3, 8))[y] * 2 + rng.standard_normal((60, 8))
    T = rng.standard_normal((3, 8))
    out = am.compute_measures(X, T, y, ["ncti_vc", "logme", "ncti_seli", "ncti_ncc", "emms"])
    terms = tr.ncti_terms(X, y, variant="definition")
    assert (out["ncti_seli"], out["ncti_ncc"], out["ncti_vc"]) == (terms.seli, terms.ncc, terms.vc)
    assert out["logme"] == tr.logme(X, y, variant="definition")
    assert out["emms"] == tr.emms(X, y, T, variant="definition")
    assert am.BASELINE_VARIANT == "definition"


def test_variant_is_passed_to_the_baselines_and_checked() -> None:
    from app.measures import transferability as tr

    rng = np.random.default_rng(3)
    y = np.arange(60) % 3
    X = rng.standard_normal((3, 8))[y] * 2 + rng.standard_normal((60, 8))
    T = rng.standard_normal((3, 8))
    out = am.compute_measures(X, T, y, ["sfda", "emms", "ncti_seli"], variant="iimm_reference")
    assert out["sfda"] == tr.sfda(X, y, variant="iimm_reference")
    assert out["emms"] == tr.emms(X, y, T, variant="iimm_reference")
    assert out["ncti_seli"] == tr.ncti_terms(X, y, variant="iimm_reference").seli
    with pytest.raises(ValueError, match="variant must be one of definition, iimm_reference"):
        am.compute_measures(X, T, y, ["iimm"], variant="paper")
    with pytest.raises(ValueError, match="has no LogME"):
        am.compute_measures(X, T, y, ["logme"], variant="iimm_reference")


def _one_per_class() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 8)), rng.normal(size=(4, 8)), np.arange(4)


@pytest.mark.parametrize("variant", ["definition", "iimm_reference", "authors", "authors_icml"])
def test_undefined_baselines_name_the_measure_and_leave_the_others(variant: str) -> None:
    from app.measures import ALL_MEASURES, measure_report
    from app.measures.registry import FAST_MEASURES, NCTI_TERMS

    X, T, y = _one_per_class()
    report = measure_report(X, T, y, names=ALL_MEASURES, variant=variant)
    fast = am.compute_measures(X, T, y, names=FAST_MEASURES)
    for name in FAST_MEASURES:
        assert report.values[name] == pytest.approx(fast[name], rel=1e-12)
    assert report.values["gbc"] is None
    for name, reason in report.reasons.items():
        method = "ncti" if name in NCTI_TERMS else name
        assert reason.startswith("undefined"), reason
        assert method in reason, reason
        assert "np." not in reason and "int64" not in reason, reason
    if variant == "definition":
        assert "class 0 has 1" in report.reasons["gbc"]


def test_a_variant_a_method_lacks_is_null_with_the_reason() -> None:
    from app.measures import measure_report

    X, T, y = _one_per_class()
    X, y = np.vstack([X, X + 0.1]), np.concatenate([y, y])
    report = measure_report(X, T, y, names=["logme", "hscore", "iimm"], variant="iimm_reference")
    assert report.values["logme"] is None
    assert report.reasons["logme"] == (
        "undefined: logme has no iimm_reference variant: the IIMM paper's code has no LogME; "
        "use definition, authors or authors_icml"
    )
    assert report.values["hscore"] is not None and report.values["iimm"] is not None
    icml = measure_report(X, T, y, names=["logme", "sfda"], variant="authors_icml")
    assert icml.values["logme"] is not None and icml.values["sfda"] is None
    assert "sfda has no authors_icml variant" in icml.reasons["sfda"]
    with pytest.raises(ValueError, match="logme has no iimm_reference variant"):
        am.compute_measures(X, T, y, names=["logme"], variant="iimm_reference")


def test_iimm_family_normalises_rows_and_baselines_take_features_as_given() -> None:
    """What README and `iimm measures --help` say: scaling the images leaves the IIMM family
    unchanged and changes a baseline (TransRate's coding rate depends on the scale)."""
    rng = np.random.default_rng(0)
    X, T, y = rng.normal(size=(40, 8)), rng.normal(size=(4, 8)), np.arange(40) % 4
    names = [*am.FAST_MEASURES, "transrate"]
    a, b = am.compute_measures(X, T, y, names), am.compute_measures(3 * X, T, y, names)
    for name in am.FAST_MEASURES:
        assert b[name] == pytest.approx(a[name], rel=1e-9, abs=1e-12)
    assert abs(b["transrate"] - a["transrate"]) > 1e-4
