"""LoRA (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models").

A frozen weight ``W`` (out × in) becomes ``W + (α / r) · B A`` with ``A`` (r × in) drawn like
a Linear's weight (Kaiming-uniform) and ``B`` (out × r) zero, so the adapted model equals the
base model exactly at initialisation. As in the paper's experiments, the query and value
projections of every transformer block are adapted (optionally the MLP Linears too).

Why not ``peft``: open_clip keeps q, k and v in one fused ``in_proj_weight`` (of
``nn.MultiheadAttention`` or its own ``Attention``; timm towers use a fused ``qkv`` Linear).
peft can only wrap a whole ``nn.MultiheadAttention`` (adapting q, k, v *and* out_proj with a
shared rank, no way to pick q and v) and cannot target open_clip's ``Attention`` at all.
Here the update is a ``torch.nn.utils.parametrize`` parametrization of the fused weight
whose delta is non-zero only on the q and v row blocks, which works for every layout
:mod:`workers.ml.finetune.towers` understands and keeps the modules' own forward.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from workers.ml.finetune.config import FinetuneConfig
from workers.ml.finetune.towers import in_projections, mlp_linears, transformer_blocks

LORA_PARTS = frozenset({"q", "v"})


class LoRADelta(nn.Module):
    """Parametrization ``W ↦ W + (α/r)·[B_p A_p]_p`` over the row blocks ``parts`` of ``W``;
    blocks not in ``adapt`` get a zero update."""

    def __init__(
        self, weight: Tensor, parts: tuple[str, ...], adapt: set[str], rank: int, alpha: float
    ) -> None:
        super().__init__()
        out_features, in_features = weight.shape
        self.parts = parts
        self.adapt = tuple(p for p in parts if p in adapt)
        self.rows = out_features // len(parts)
        self.scaling = alpha / rank
        for part in self.adapt:
            a = torch.empty(rank, in_features, dtype=weight.dtype, device=weight.device)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            b = torch.zeros(self.rows, rank, dtype=weight.dtype, device=weight.device)
            self.register_parameter(f"lora_A_{part}", nn.Parameter(a))
            self.register_parameter(f"lora_B_{part}", nn.Parameter(b))

    def forward(self, weight: Tensor) -> Tensor:
        pieces = []
        for part in self.parts:
            if part in self.adapt:
                a = getattr(self, f"lora_A_{part}")
                b = getattr(self, f"lora_B_{part}")
                pieces.append(b @ a)
            else:
                pieces.append(weight.new_zeros(self.rows, weight.shape[1]))
        return weight + self.scaling * torch.cat(pieces, dim=0)


def _lora_targets(
    model: nn.Module, config: FinetuneConfig
) -> list[tuple[nn.Module, str, tuple[str, ...], set[str]]]:
    targets = []
    for block in transformer_blocks(model, config.blocks):
        for proj in in_projections(block):
            adapt = set(proj.parts) & LORA_PARTS
            if adapt:
                targets.append((proj.owner, proj.param_name, proj.parts, adapt))
        if config.lora_mlp:
            targets.extend((lin, "weight", ("w",), {"w"}) for _, lin in mlp_linears(block))
    return targets


def apply_lora(model: nn.Module, config: FinetuneConfig) -> list[nn.Parameter]:
    """Add LoRA (rank ``config.lora_rank``, scaling ``config.lora_alpha / rank``) to q and v
    (and the MLP when ``config.lora_mlp``) of the first ``config.blocks`` blocks of both
    towers; return the new trainable parameters. Every target is found before anything is
    changed, so an unsupported tower leaves the model untouched."""
    targets = _lora_targets(model, config)
    params: list[nn.Parameter] = []
    for owner, name, parts, adapt in targets:
        weight = getattr(owner, name)
        delta = LoRADelta(weight, parts, adapt, config.lora_rank, config.lora_alpha)
        parametrize.register_parametrization(owner, name, delta)
        params.extend(delta.parameters())
    return params


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its weight (``W ← W + (α/r)·BA``) and drop the
    parametrizations, leaving a plain open_clip model; returns ``model``."""
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        for name in list(module.parametrizations.keys()):
            if any(isinstance(p, LoRADelta) for p in module.parametrizations[name]):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def base_parameter_name(name: str) -> str:
    """Map a parametrized name (``a.parametrizations.w.original``) back to the base name."""
    return name.replace(".parametrizations.", ".").replace(".original", "")
