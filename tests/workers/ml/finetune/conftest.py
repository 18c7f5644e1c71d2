"""Fixtures for the fine-tuning tests: tiny open_clip models (random init, no download)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import open_clip
import pytest
import torch
from torch import nn

from tests.workers.ml.finetune.support import EXTRA_CONFIGS, TINY_CONFIG


@pytest.fixture(scope="session")
def model_configs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Register tiny-clip and the extra tiny configs through open_clip's public path."""
    folder = tmp_path_factory.mktemp("ft-configs")
    (folder / "ft-tiny-clip.json").write_text(TINY_CONFIG.read_text())
    for name, cfg in EXTRA_CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)


@pytest.fixture(scope="session")
def _pristine(model_configs: None) -> dict[str, nn.Module]:
    built: dict[str, nn.Module] = {}
    for name in ("ft-tiny-clip", "ft-tiny-timm", "ft-tiny-rn"):
        torch.manual_seed(0)
        built[name] = open_clip.create_model(name, pretrained=None).eval()
    return built


@pytest.fixture
def make_model(_pristine: dict[str, nn.Module]) -> Callable[..., nn.Module]:
    """A fresh copy of a tiny model (the same weights every call)."""

    def make(name: str = "ft-tiny-clip") -> nn.Module:
        return copy.deepcopy(_pristine[name])

    return make


@pytest.fixture(scope="session")
def tokenizer(model_configs: None) -> Callable[[list[str]], torch.Tensor]:
    return open_clip.get_tokenizer("ft-tiny-clip")
