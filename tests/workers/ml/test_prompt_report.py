"""Prompts the tokenizer truncates: named in meta.json, with the classes they make collide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
