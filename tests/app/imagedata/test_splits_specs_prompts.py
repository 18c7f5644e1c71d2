"""Splits, model specs and prompt templates, and the torch-free import boundary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.imagedata import (
    PRESETS,
    ImageDataError,
    ModelSpecError,
    default_templates,
    render_prompts,
    resolve_spec,
    stratified_holdout,
    validation_size,
)

REPO = Path(__file__).resolve().parents[3]


def test_validation_split_is_ten_percent_capped_at_5000() -> None:
    assert validation_size(1000) == 100
    assert validation_size(49_999) == 5000
    assert validation_size(1_000_000) == 5000


def test_stratified_holdout_is_proportional_seeded_and_disjoint() -> None:
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    kept, held = stratified_holdout(labels, 10, seed=1)
    assert len(held) == 10 and len(kept) == 90
    assert np.bincount(labels[held]).tolist() == [5, 3, 2]
    assert not set(kept) & set(held)
    again = stratified_holdout(labels, 10, seed=1)[1]
    assert held.tolist() == again.tolist()
    assert held.tolist() != stratified_holdout(labels, 10, seed=2)[1].tolist()


def test_holdout_keeps_one_of_every_class() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    kept, _ = stratified_holdout(labels, 4, seed=0)
    assert set(labels[kept]) == {0, 1, 2}


@pytest.mark.parametrize(
    ("preset", "arch", "tag"),
    [
        ("clip", "ViT-B-32", "openai"),
        ("siglip", "ViT-B-16-SigLIP", "webli"),
        ("coca", "coca_ViT-B-32", "laion2b_s13b_b90k"),
        ("eva02", "EVA02-B-16", "merged2b_s8b_b131k"),
    ],
)
def test_presets_resolve_to_the_published_models(preset: str, arch: str, tag: str) -> None:
    spec = resolve_spec(preset)
    assert (spec.kind, spec.arch, spec.pretrained) == ("tag", arch, tag)
    assert PRESETS[preset] == (arch, tag)
    assert spec.canonical == f"{arch}@{tag}"


def test_spec_grammar(tmp_path: Path) -> None:
    assert resolve_spec("ViT-B-32@laion2b_s34b_b79k").pretrained == "laion2b_s34b_b79k"
    assert resolve_spec("ViT-B-32@random").kind == "random"
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"x")
    spec = resolve_spec(f"ViT-B-32@{ckpt}")
    assert (spec.kind, spec.pretrained) == ("checkpoint", str(ckpt.resolve()))
    cfg = REPO / "workers" / "ml" / "configs" / "tiny-clip.json"
    spec = resolve_spec(str(cfg))
    assert (spec.kind, spec.arch, spec.config_path) == ("random", "tiny-clip", str(cfg))
    assert resolve_spec(f"{cfg}@{ckpt}").kind == "checkpoint"
    assert resolve_spec("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K").kind == "hf-hub"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("ViT-B-32", "names no weights"),
        ("NoSuchNet@openai", "unknown open_clip"),
        ("ViT-B-32@/no/such/file.pt", "checkpoint file not found: /no/such/file.pt"),
        ("/no/arch.json", "config file not found"),
        ("hf-hub:", "needs an identifier"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        resolve_spec(spec)


def test_prompts_defaults_and_rendering() -> None:
    assert default_templates("MNIST") == ['a photo of the number: "{c}".']
    assert default_templates("dtd") == ["a photo of a {c} texture."]
    assert default_templates("my-own-data") == ["a photo of a {c}."]
    assert len(default_templates("eurosat", ensemble=True)) == 3
    assert render_prompts(["a {c}.", "the {}!"], ["cat", "dog"]) == [
        ["a cat.", "the cat!"],
        ["a dog.", "the dog!"],
    ]
    with pytest.raises(ImageDataError, match="placeholder"):
        render_prompts(["no placeholder"], ["cat"])


def test_app_imagedata_never_imports_torch() -> None:
    code = (
        "import sys, app.imagedata, app.imagedata.open, app.imagedata.model_specs; "
        "app.imagedata.resolve_spec('clip'); "
        "bad = [m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
