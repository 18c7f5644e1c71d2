"""Shared helpers of the fine-tuning tests: tiny configs and a learnable generated task
(each class is a colour; images are that colour plus noise)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

REPO = Path(__file__).resolve().parents[4]
TINY_CONFIG = REPO / "workers" / "ml" / "configs" / "tiny-clip.json"
CLASS_NAMES = ["red", "green", "blue", "yellow"]
TEMPLATES = ["a photo of a {} thing.", lambda c: f"{c}"]
COLOURS = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])
TEXT_CFG = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}
EXTRA_CONFIGS = {
    # a timm image tower (timm's own tiny ViT, 160 px), as SigLIP / EVA-02 towers are built
    "ft-tiny-timm": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 160,
            "timm_model_name": "test_vit",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
        },
        "text_cfg": TEXT_CFG,
    },
    # a ResNet image tower: no transformer blocks
    "ft-tiny-rn": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
        "text_cfg": TEXT_CFG,
    },
}


def colour_task(n: int, seed: int, size: int = 32, noise: float = 0.3) -> TensorDataset:
    """``n`` images, label ``i % 4``: the class colour everywhere plus Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASS_NAMES)
    images = COLOURS[labels][:, :, None, None].expand(n, 3, size, size)
    images = images + noise * torch.randn(n, 3, size, size, generator=generator)
    return TensorDataset(images.contiguous(), labels)


def base_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer of a model, by name."""
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    state.update({f"buffer:{n}": b.detach().clone() for n, b in model.named_buffers()})
    return state
