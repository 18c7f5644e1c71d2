"""CLIP-Adapter (Gao et al. 2021, "CLIP-Adapter: Better Vision-Language Models with Feature
Adapters") and the linear probe.

CLIP-Adapter: a bottleneck mixed residually, ``f' = ρ·A(f) + (1 − ρ)·f`` with ρ = 0.2, on
both the image and the text embedding, ``W₁``: d → d/r and ``W₂``: d/r → d without biases.
Two initialisations:

* ``"zero"`` (default): ``A(f) = W₂ ReLU(W₁ f)`` with ``W₂ = 0``, so the adapted model predicts
  exactly what the base model predicts at the first step (``f' = 0.8 f`` has the same
  direction) and the gain is measured from the zero-shot point. The reference code's final
  ReLU is left out here: with ``W₂ = 0`` its input is 0, where ReLU's gradient is 0, and
  ``W₂`` would never move.
* ``"reference"``: Gao et al.'s code exactly, ``A(f) = ReLU(W₂ ReLU(W₁ f))`` with both
  weights drawn like ``nn.Linear``'s; it does not equal the base model at initialisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ADAPTER_INITS = ("zero", "reference")


class CLIPAdapter(nn.Module):
    """Residual bottleneck adapter of width ``width`` and reduction ``reduction``."""

    def __init__(self, width: int, reduction: int, ratio: float = 0.2, init: str = "zero") -> None:
        super().__init__()
        if init not in ADAPTER_INITS:
            raise ValueError(f"adapter init must be one of {list(ADAPTER_INITS)}, got {init!r}")
        hidden = max(1, width // reduction)
        self.down = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(hidden, width, bias=False)
        self.final_relu = init == "reference"
        if init == "zero":
            nn.init.zeros_(self.up.weight)
        self.ratio = ratio

    def forward(self, features: Tensor) -> Tensor:
        adapted = self.up(torch.relu(self.down(features)))
        if self.final_relu:
            adapted = torch.relu(adapted)
        return self.ratio * adapted + (1.0 - self.ratio) * features


class LinearProbe(nn.Module):
    """A linear head on frozen, L2-normalised image features: ``logits = s·(W x + b)``.

    ``W`` starts as the task's class text embeddings and ``b`` at zero, with ``s`` the model's
    ``logit_scale.exp()`` frozen at that moment, so the probe starts from the zero-shot
    classifier (as in LP-FT / WiSE-FT practice) rather than from chance."""

    def __init__(self, class_embeddings: Tensor, scale: float, class_names: list[str]) -> None:
        super().__init__()
        num_classes, width = class_embeddings.shape
        self.linear = nn.Linear(width, num_classes)
        with torch.no_grad():
            self.linear.weight.copy_(class_embeddings)
            self.linear.bias.zero_()
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.class_names = list(class_names)

    def forward(self, image_features: Tensor) -> Tensor:
        return self.scale * self.linear(image_features)
