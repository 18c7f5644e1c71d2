"""The reference model's corpus, suite and training (a short build: small corpus, few steps)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file

from app.imagedata import open_dataset
from iimm_cli import main
from workers.ml.reference.build import build_reference
from workers.ml.reference.card import sha256_file
from workers.ml.reference.corpus import build_corpus
from workers.ml.reference.drawing import HELD_OUT_PAIRS, UNCAPTIONED_SHAPES
from workers.ml.reference.suite import SUITE, generate_suite
from workers.ml.reference.train import TrainConfig

SHORT = ["--images", "300", "--steps", "3", "--batch-size", "32", "--warmup", "1"]


def test_corpus_never_names_what_the_suite_calls_uncaptioned() -> None:
    corpus = build_corpus(1500, seed=3)
    words = {w for caps in corpus.captions for c in caps for w in re.findall(r"\w+", c)}
    never = {"letter", "left", "right", "top", "bottom", "one", "two", "three", "four"}
    assert not words & (never | set(UNCAPTIONED_SHAPES))
    text = " ".join(c for caps in corpus.captions for c in caps)
    for colour, shape in HELD_OUT_PAIRS:  # never drawn, so never captioned
        assert f"{colour} {shape}" not in text
    for task in SUITE:  # every class of a seen task is taught with the default prompt
        if task.group == "seen":
            for c in task.classes:
                assert f"a photo of a {c}." in text, c


def test_corpus_is_the_same_for_a_seed_whatever_its_length() -> None:
    a, b = build_corpus(40, seed=1), build_corpus(60, seed=1)
    assert (a.images == b.images[:40]).all() and a.captions == b.captions[:40]
    assert (build_corpus(40, seed=2).images != a.images).any()


def test_suite_tasks_are_valid_datasets(tmp_path: Path) -> None:
    folders = generate_suite(tmp_path, per_class=4, seed=0)
    assert list(folders) == [t.name for t in SUITE] and 10 <= len(SUITE) <= 14
    for task in SUITE:
        layout = open_dataset(folders[task.name])
        assert sorted(layout.class_names) == sorted(task.classes), task.name
        assert layout.split("test").class_counts(layout.num_classes) == [1] * len(task.classes)
        meta = json.loads((folders[task.name] / "dataset.json").read_text())
        assert meta["group"] == task.group and meta["suite"] == "reference"
    with pytest.raises(ValueError, match="unknown reference-suite tasks"):
        generate_suite(tmp_path / "x", tasks=["nope"])


def test_handwritten_digits_are_scikit_learns(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    folder = generate_suite(tmp_path, per_class=None, tasks=["handwritten-digits"])  # type: ignore[arg-type]
    n = len(list(folder["handwritten-digits"].rglob("*.png")))
    assert n == len(load_digits().target) == 1797


def test_short_build_is_deterministic_and_loads(tmp_path: Path) -> None:
    out = tmp_path / "a"
    assert main(["reference", "build", "--out", str(out), *SHORT, "--eval-per-class", "4"]) == 0
    card = json.loads((out / "model-card.json").read_text())
    cfg = TrainConfig(images=300, steps=3, batch_size=32, warmup=1)
    again = build_reference(tmp_path / "b", cfg, eval_per_class=4, log=lambda _: None)
    assert card["sha256"] == again["sha256"] == sha256_file(out / "reference-clip.safetensors")
    a = load_file(out / "reference-clip.safetensors")
    b = load_file(tmp_path / "b" / "reference-clip.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    other = build_reference(tmp_path / "c", TrainConfig(seed=1, images=300, steps=3, batch_size=32,
                            warmup=1), eval_per_class=4, log=lambda _: None)  # fmt: skip
    assert other["sha256"] != card["sha256"]
    assert [r["task"] for r in card["zero_shot"]] == [t.name for t in SUITE]
    assert card["command"].startswith(f"iimm reference build --out {out} --seed 0 --images 300")
    md = (out / "model-card.md").read_text()
    assert "## Zero-shot top-1 accuracy" in md
    assert "Measured on the suite at 4 images a class" in md  # why the demo prints others
    assert main(["reference", "build", "--out", str(out), *SHORT]) == 2  # not empty

    from workers.ml.models import load_model

    loaded = load_model(f"{out / 'reference-clip.json'}@{out / 'reference-clip.safetensors'}",
                        device="cpu")  # fmt: skip
    for key, tensor in loaded.model.state_dict().items():
        assert (tensor == a[key]).all(), key
