"""`iimm measures` end to end: files in, JSON or a table out, exit code 2 on user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.measures import ALL_MEASURES, FAST_MEASURES, compute_measures
from iimm_cli import main


@pytest.fixture()
def embedding_files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    n, k, d = 60, 4, 8
    labels = rng.integers(0, k, size=n)
    labels[:k] = np.arange(k)  # every class present
    arrays = {
        "images": rng.normal(size=(n, d)).astype(np.float16),
        "texts": rng.normal(size=(k, d)).astype(np.float32),
        "labels": labels.astype(np.int64),
    }
    paths = {}
    for name, arr in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], arr)
    return paths


def _args(paths: dict[str, Path], *extra: str) -> list[str]:
    return [
        "measures",
        "--images", str(paths["images"]),
        "--texts", str(paths["texts"]),
        "--labels", str(paths["labels"]),
        *extra,
    ]  # fmt: skip


def test_json_has_exactly_the_fast_family_and_library_values(
    embedding_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(embedding_files, "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    out = doc["measures"]
    assert set(out) == set(FAST_MEASURES) and doc["reasons"] == {}
    expected = compute_measures(
        np.load(embedding_files["images"]),
        np.load(embedding_files["texts"]),
        np.load(embedding_files["labels"]),
    )
    for name in FAST_MEASURES:
        assert out[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12)


def test_all_names_the_baselines_and_costly_measures(
    embedding_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(embedding_files, "--measures", "all", "--json")) == 0
    out = json.loads(capsys.readouterr().out)["measures"]
    assert set(out) == set(ALL_MEASURES)
    for name in ("transrate", "sfda", "ncti_seli", "emms", "logme", "hscore", "gbc", "entropy"):
        assert name in out


def test_selected_measures_as_a_table(
    embedding_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(embedding_files, "--measures", "iimm,modality_gap")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {line.split()[0]: float(line.split()[1]) for line in lines[2:]}
    assert set(rows) == {"iimm", "modality_gap"}
    expected = compute_measures(
        np.load(embedding_files["images"]),
        np.load(embedding_files["texts"]),
        np.load(embedding_files["labels"]),
        names=("iimm",),
    )
    assert rows["iimm"] == pytest.approx(expected["iimm"], rel=1e-5)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        ("unknown-measure", "unknown measure"),
        ("missing-file", "does not exist"),
        ("label-out-of-range", "label"),
        ("pickled", "not a plain .npy"),
    ],
)
def test_user_errors_exit_2_with_a_message_on_stderr(
    embedding_files: dict[str, Path], tmp_path: Path, mutate: str, message: str
) -> None:
    extra: list[str] = []
    if mutate == "unknown-measure":
        extra = ["--measures", "iimm,nope"]
    elif mutate == "missing-file":
        embedding_files["texts"] = tmp_path / "absent.npy"
    elif mutate == "label-out-of-range":
        labels = np.load(embedding_files["labels"])
        labels[0] = 99
        np.save(embedding_files["labels"], labels)
    elif mutate == "pickled":
        np.save(embedding_files["images"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    proc = subprocess.run(
        [sys.executable, "-m", "iimm_cli", *_args(embedding_files, *extra)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_variant_computes_the_baselines_as_the_published_programs(
    embedding_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from app.measures.transferability import gbc, transrate

    args = _args(embedding_files, "--measures", "transrate,gbc,iimm", "--json")
    assert main([*args, "--variant", "iimm_reference"]) == 0
    out = json.loads(capsys.readouterr().out)["measures"]
    x, y = np.load(embedding_files["images"]), np.load(embedding_files["labels"])
    assert out["transrate"] == pytest.approx(transrate(x, y, variant="iimm_reference"), rel=1e-12)
    assert out["gbc"] == pytest.approx(gbc(x, y, variant="iimm_reference"), rel=1e-12)
    assert main(args) == 0
    default = json.loads(capsys.readouterr().out)["measures"]
    assert default["iimm"] == out["iimm"]
    assert default["transrate"] == pytest.approx(transrate(x, y), rel=1e-12)


def test_undefined_measures_are_null_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The field cases: one class present (every baseline undefined), one sample per class
    (GBC undefined); the other measures are the library's values, the exit code 0."""
    cases = Path(__file__).resolve().parents[1] / "fixtures" / "cases"
    from app.measures.registry import BASELINES

    for case, undefined in (("one_class_present", set(BASELINES)), ("two_by_two", {"gbc"})):
        arrays = np.load(cases / f"{case}.npz")
        paths = {}
        for name in ("images", "texts", "labels"):
            paths[name] = tmp_path / f"{case}-{name}.npy"
            np.save(paths[name], arrays[name])
        assert main(_args(paths, "--measures", "all", "--json")) == 0
        doc = json.loads(capsys.readouterr().out)
        assert {k for k, v in doc["measures"].items() if v is None} == undefined
        assert set(doc["reasons"]) == undefined
        names = [n for n in ALL_MEASURES if n not in undefined]
        defined = compute_measures(arrays["images"], arrays["texts"], arrays["labels"], names=names)
        for name, value in defined.items():
            assert doc["measures"][name] == pytest.approx(value, rel=1e-9)
        assert main(_args(paths, "--measures", "iimm,gbc")) == 0
        table = capsys.readouterr().out
        assert "gbc" in table and "null" in table and "undefined on these data" in table


@pytest.mark.parametrize("variant", ["iimm_reference", "authors", "authors_icml"])
def test_all_measures_with_any_variant_on_one_sample_per_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: str
) -> None:
    """n=4, k=4: the measures a variant cannot compute are null with a reason naming them;
    the run exits 0 and the IIMM family is the library's."""
    rng = np.random.default_rng(1)
    paths = {}
    for name, arr in (("images", rng.normal(size=(4, 8))), ("texts", rng.normal(size=(4, 8))),
                      ("labels", np.arange(4))):  # fmt: skip
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], arr)
    assert main(_args(paths, "--measures", "all", "--variant", variant, "--json")) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "Warning" not in captured.err
    assert doc["measures"]["gbc"] is None and doc["measures"]["iimm"] is not None
    for name, reason in doc["reasons"].items():
        assert name.split("_")[0] in reason and "np." not in reason, reason
    if variant == "iimm_reference":
        assert doc["measures"]["logme"] is None
        assert "logme has no iimm_reference variant" in doc["reasons"]["logme"]
    if variant == "authors_icml":
        assert doc["measures"]["logme"] is not None
