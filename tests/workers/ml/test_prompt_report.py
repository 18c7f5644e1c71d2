"""Prompts the tokenizer truncates: named in meta.json, with the classes they make collide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.imagedata import open_dataset
from workers.ml.embed import embed_dataset
from workers.ml.models import LoadedModel
from workers.ml.text import prompt_report, prompt_warnings

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "cases"
CORVUS = "kingdom animalia phylum chordata class aves order passeriformes family corvidae genus "
CORAX, CORONE = CORVUS + "corvus species corax", CORVUS + "corvus species corone"


def test_report_counts_tokens_before_the_cut(tiny_model: LoadedModel) -> None:
    report = prompt_report(tiny_model, ["cat", "dog", CORAX, CORONE], ["a photo of a {c}."])
    assert report["context_length"] == 16
    assert report["colliding"] == [[CORAX, CORONE]]
    # "a photo of a cat." is <sot> a photo of a cat . <eot>: 8 tokens, not truncated.
    assert [t["class"] for t in report["truncated"]] == [CORAX, CORONE]
    full = tiny_model.tokenizer([f"a photo of a {CORAX}."], context_length=200)
    assert report["truncated"][0]["tokens"] == int(full.count_nonzero())
    short = prompt_report(tiny_model, ["cat", "dog"], ["a photo of a {c}.", "a {c}."])
    assert short["colliding"] == [] and short["truncated"] == []
    sentences = prompt_warnings(report)
    assert len(sentences) == 2 and CORONE in sentences[1]


def test_meta_json_names_them(tiny_model: LoadedModel, tmp_path: Path) -> None:
    layout = open_dataset(CASES / "long_classnames.zip", extract_dir=tmp_path / "x")
    embed_dataset(tiny_model, layout, split="test", out_dir=tmp_path / "emb", num_workers=0)
    meta = json.loads((tmp_path / "emb" / "meta.json").read_text())
    names = layout.class_names
    assert meta["prompt_report"]["colliding"] == [[names[0], names[1]]]
    assert any("identical prompts" in w for w in meta["warnings"])
    texts = np.load(tmp_path / "emb" / "texts.npy")
    assert np.array_equal(texts[0], texts[1]) and not np.array_equal(texts[0], texts[2])


def test_named_ensembles() -> None:
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    from app.imagedata import ImageDataError
    from app.imagedata.prompts import default_templates, resolve_templates
    from app.jobs.types import EmbedParams

    clip80 = resolve_templates("clip_imagenet_80", "whatever")
    assert clip80 == [t("{c}") for t in OPENAI_IMAGENET_TEMPLATES] and len(clip80) == 80
    assert resolve_templates(None, "EuroSAT") == resolve_templates("paper", "EuroSAT")
    assert resolve_templates(None, "EuroSAT") == default_templates("eurosat")
    eurosat = resolve_templates("clip_benchmark", "EuroSAT")
    assert eurosat[0] == "a centered satellite photo of {c}." and len(eurosat) == 3
    assert resolve_templates("clip_benchmark", "Stanford-Cars")[0] == "a photo of a {c}."
    assert resolve_templates("clip_benchmark:gtsrb", None) == resolve_templates(
        "clip_benchmark", "GTSRB"
    )
    for bad, word in (("clip_benchmark", "no templates"), ("bogus", "clip_imagenet_80")):
        with pytest.raises(ImageDataError, match=word):
            resolve_templates(bad, "my-own-data")
    ok = {"model_id": "m", "dataset_id": "d"}
    assert EmbedParams.model_validate({**ok, "prompts": "clip_imagenet_80"}).prompts
    with pytest.raises(ValueError, match="unknown prompt ensemble"):
        EmbedParams.model_validate({**ok, "prompts": "bogus"})
    with pytest.raises(ValueError, match="placeholder"):
        EmbedParams.model_validate({**ok, "prompts": ["no placeholder"]})


def test_embed_with_a_named_ensemble(tiny_model: LoadedModel, tmp_path: Path) -> None:
    layout = open_dataset(CASES / "long_classnames.zip", extract_dir=tmp_path / "x")
    out = tmp_path / "emb"
    embed_dataset(tiny_model, layout, split="test", out_dir=out, prompts="clip_imagenet_80",
                  num_workers=0)  # fmt: skip
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["templates"]) == 80 and len(meta["prompts"][0]) == 80
