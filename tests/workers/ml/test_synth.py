"""The synthetic task generator: six kinds, splits, class names, determinism."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.imagedata import open_dataset
from iimm_cli import main
from workers.ml.synth import TASKS, generate_task


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_is_a_valid_dataset(tmp_path: Path, task: str) -> None:
    out = generate_task(task, tmp_path / task, per_class=4, seed=0, size=24)
    layout = open_dataset(out)
    k = len(TASKS[task].classes)
    assert layout.num_classes == k >= 4
    assert layout.class_names == sorted(c for c in TASKS[task].classes)
    assert layout.split("test").class_counts(k) == [1] * k
    assert layout.split("train").class_counts(k) == [3] * k
    img = Image.open(next(out.rglob("*.png")))
    assert img.size == (24, 24) and img.mode == "RGB"


def test_classes_are_visually_distinct(tmp_path: Path) -> None:
    out = generate_task("colours", tmp_path / "c", per_class=2, seed=0)
    means = {
        p.parent.name: np.asarray(Image.open(p), dtype=float).mean(axis=(0, 1))
        for p in sorted(out.glob("train/*/*.png"))
    }
    assert means["red"][0] > means["red"][2] and means["blue"][2] > means["blue"][0]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = generate_task("digits", tmp_path / "a", per_class=3, seed=7)
    b = generate_task("digits", tmp_path / "b", per_class=3, seed=7)
    c = generate_task("digits", tmp_path / "c", per_class=3, seed=8)
    assert _digest(a) == _digest(b) != _digest(c)


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    assert (
        main(["synth", "--task", "shapes", "--out", str(out), "--per-class", "4", "--seed", "0"])
        == 0
    )
    assert len(list(out.rglob("*.png"))) == 6 * 4
    assert main(["synth", "--task", "shapes", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_cli_synth_reference_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workers.ml.reference.suite import SUITE

    out = tmp_path / "suite"
    assert main(["synth", "--suite", "reference", "--out", str(out), "--per-class", "4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(t.name for t in SUITE)
    assert capsys.readouterr().out.split() == [str(out / t.name) for t in SUITE]
    assert len(list((out / "colours").rglob("*.png"))) == 6 * 4
    args = ["synth", "--suite", "reference", "--task", "shapes", "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit):
        main(args)
