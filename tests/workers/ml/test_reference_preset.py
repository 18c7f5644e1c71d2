"""The shipped reference checkpoint: the `reference` preset, its SHA-256 and what it knows."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from app.imagedata.model_specs import REFERENCE_ARCH, REFERENCE_WEIGHTS, resolve_spec
from workers.ml.reference.card import sha256_file, zero_shot_table
from workers.ml.reference.suite import generate_suite

CARD = REFERENCE_WEIGHTS.with_name("reference-clip.card.json")


def test_preset_names_the_shipped_files_and_its_card_their_hash() -> None:
    spec = resolve_spec("reference")
    assert (spec.kind, spec.pretrained, spec.config_path) == (
        "checkpoint",
        str(REFERENCE_WEIGHTS),
        str(REFERENCE_ARCH),
    )
    card = json.loads(CARD.read_text())
    assert sha256_file(REFERENCE_WEIGHTS) == card["sha256"]
    assert REFERENCE_WEIGHTS.stat().st_size == card["weights_bytes"] <= 10_000_000
    seed = card["train_config"]["seed"]
    assert card["command"] == f"iimm reference build --out DIR --seed {seed}"


def test_preset_loads_the_weights_and_knows_seen_concepts_only(tmp_path: Path) -> None:
    from workers.ml.models import load_model

    loaded = load_model("reference", device="cpu")
    saved = load_file(REFERENCE_WEIGHTS)
    for key, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, saved[key]), key
    folders = generate_suite(tmp_path, per_class=12, seed=5, tasks=["colours", "letters"])
    table = {r["task"]: r for r in zero_shot_table(loaded.model, loaded.tokenizer, folders)}
    assert table["colours"]["top1"] >= table["colours"]["chance"] + 0.5
    assert abs(table["letters"]["top1"] - table["letters"]["chance"]) <= 0.25
