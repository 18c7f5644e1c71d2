"""Each method trains exactly the parameters it should, and nothing else moves."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
from torch import nn

from tests.workers.ml.finetune.support import CLASS_NAMES, TEMPLATES, base_snapshot, colour_task
from workers.ml.finetune import FinetuneConfig, finetune
from workers.ml.finetune.lora import base_parameter_name

BLOCK = r"^(visual\.transformer\.resblocks|transformer\.resblocks)\.(\d+)\."
IMAGE_WIDTH, TEXT_WIDTH, EMBED = 64, 32, 32  # from workers/ml/configs/tiny-clip.json


def _block_params(model: nn.Module, suffix: str, first_n: int | None) -> set[str]:
    names = set()
    for name, _ in model.named_parameters():
        match = re.match(BLOCK, name)
        if match and re.search(suffix, name) and (first_n is None or int(match[2]) < first_n):
            names.add(name)
    return names


def _expected_base_trained(method: str, model: nn.Module, blocks: int | None) -> set[str]:
    """An enumeration independent of the library: by name patterns of the tiny config."""
    if method == "full":
        return {n for n, _ in model.named_parameters()}
    if method == "bitfit":
        return _block_params(model, r"bias$", blocks)
    if method == "attention":
        return _block_params(model, r"\.attn\.in_proj_weight$", blocks)
    return set()


def _expected_added_count(method: str, config: FinetuneConfig) -> int:
    r = config.lora_rank
    if method == "lora":  # q and v of 2 blocks per tower: A (r × d) + B (d × r)
        return 2 * 2 * (2 * r * IMAGE_WIDTH) + 2 * 2 * (2 * r * TEXT_WIDTH)
    if method == "adapter":  # down (d → d/r) and up (d/r → d), image and text
        hidden = EMBED // config.adapter_reduction
        return 2 * (2 * EMBED * hidden)
    if method == "probe":
        return len(CLASS_NAMES) * EMBED + len(CLASS_NAMES)
    return 0


@pytest.mark.parametrize(
    ("method", "blocks"),
    [
        ("full", None),
        ("bitfit", None),
        ("bitfit", 1),
        ("attention", None),
        ("attention", 1),
        ("lora", None),
        ("adapter", None),
        ("probe", None),
    ],
)
def test_method_trains_exactly_its_parameters(
    method: str, blocks: int | None, make_model: Callable[..., nn.Module], tokenizer, tmp_path
) -> None:
    model = make_model()
    before = base_snapshot(model)
    expected = _expected_base_trained(method, model, blocks)
    config = FinetuneConfig(
        method=method, blocks=blocks, epochs=1, batch_size=16, lr=0.05, lora_rank=4, seed=3
    )
    result = finetune(
        model, tokenizer, colour_task(32, 0), None, CLASS_NAMES, TEMPLATES, config,
        checkpoint_dir=tmp_path, device="cpu",
    )  # fmt: skip
    ft = result.model
    trained = {n for n, p in ft.named_parameters() if p.requires_grad}
    trained_base = {n.removeprefix("base.") for n in trained if n.startswith("base.")}
    added = {n for n in trained if not n.startswith("base.") or "lora_" in n}
    assert trained_base - {n for n in trained_base if "lora_" in n} == expected
    added_count = sum(dict(ft.named_parameters())[n].numel() for n in added)
    assert added_count == _expected_added_count(method, config)
    assert result.trainable_params == sum(p.numel() for p in ft.parameters() if p.requires_grad)

    after = base_snapshot(ft.base)
    after = {base_parameter_name(n): t for n, t in after.items() if "lora_" not in n}
    assert set(after) == set(before)
    frozen = [n for n in before if n not in expected]
    assert frozen or method == "full"
    for name in frozen:
        assert torch.equal(after[name], before[name]), f"frozen tensor {name} changed"
    moved = [n for n in expected if not torch.equal(after[n], before[n])]
    assert expected == set() or moved, "no trained base parameter moved"
    if method == "bitfit" and blocks == 1:
        assert all(".resblocks.0." in n for n in expected)
